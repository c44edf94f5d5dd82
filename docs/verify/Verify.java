// Verify a Xianjie evidence packet (format xianjie.evidence-packet/2) with the JDK's Ed25519.
// Usage: java -cp 'lib/*' Verify.java PACKET.json PUBLIC_KEY_BASE64   (exit 0 valid, 1 invalid)
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.*;
import java.security.*;
import java.security.spec.X509EncodedKeySpec;
import java.util.*;
import org.erdtman.jcs.JsonCanonicalizer;

public class Verify {
    public static void main(String[] args) throws Exception {
        ObjectNode packet = (ObjectNode) new ObjectMapper().readTree(Files.readAllBytes(Path.of(args[0])));
        byte[] signature = Base64.getDecoder().decode(packet.get("signature").get("value").asText());
        packet.remove("signature");  // the signature is over everything else, in RFC 8785 form
        byte[] signed = new JsonCanonicalizer(new ObjectMapper().writeValueAsString(packet)).getEncodedUTF8();
        byte[] raw = Base64.getDecoder().decode(args[1]);  // the insurer's trusted copy of the key
        byte[] spki = HexFormat.of().parseHex("302a300506032b6570032100");  // X.509 header of an Ed25519 key
        byte[] der = Arrays.copyOf(spki, spki.length + raw.length);
        System.arraycopy(raw, 0, der, spki.length, raw.length);
        Signature ed = Signature.getInstance("Ed25519");
        ed.initVerify(KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(der)));
        ed.update(signed);
        boolean ok = ed.verify(signature);
        System.out.println(ok ? "VALID" : "INVALID");
        System.exit(ok ? 0 : 1);
    }
}
