// Verify a Xianjie evidence packet (format xianjie.evidence-packet/2) with Node's crypto.
// Usage: node verify.mjs PACKET.json PUBLIC_KEY_BASE64   (exit 0 valid, 1 invalid)
import { createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import canonicalize from "canonicalize";

const [file, keyBase64] = process.argv.slice(2);
const { signature, ...unsigned } = JSON.parse(readFileSync(file, "utf8"));
const signed = Buffer.from(canonicalize(unsigned), "utf8"); // RFC 8785 form, signature dropped
const key = createPublicKey({
  key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(keyBase64, "base64").toString("base64url") },
  format: "jwk",
});
const ok = verify(null, signed, key, Buffer.from(signature.value, "base64"));
console.log(ok ? "VALID" : "INVALID");
process.exit(ok ? 0 : 1);
