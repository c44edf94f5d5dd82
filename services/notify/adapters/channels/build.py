"""The channels a deployment uses, from its settings."""

from __future__ import annotations

from services.notify.adapters.channels import ChannelPort
from services.notify.adapters.channels.email import FileMailChannel, SmtpEmailChannel
from services.notify.adapters.channels.sms import SmsGatewayChannel, SmsOutboxChannel
from services.notify.adapters.channels.webhook import WebhookChannel
from services.notify.domain.ports import InsurerDirectory
from services.notify.settings import NotifySettings


def build_channels(settings: NotifySettings, directory: InsurerDirectory) -> dict[str, ChannelPort]:
    email: ChannelPort
    if settings.smtp_host:
        email = SmtpEmailChannel(host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
                                 username=settings.smtp_username, password=settings.smtp_password,
                                 start_tls=settings.smtp_starttls, connections=settings.smtp_connections,
                                 timeout=settings.notify_timeout_email)
    else:
        email = FileMailChannel(settings.data_dir / "mail-outbox.txt", settings.smtp_from)
    sms: ChannelPort = (SmsGatewayChannel(settings.sms_gateway_url, timeout=settings.notify_timeout_sms,
                                             max_connections=max(10, settings.notify_concurrency))
                        if settings.sms_gateway_url else SmsOutboxChannel(settings.data_dir))
    webhook = WebhookChannel(directory, timeout=settings.notify_timeout_webhook,
                             max_connections=max(10, settings.notify_concurrency),
                             directory_ttl=settings.notify_directory_ttl,
                             allow_private=settings.webhook_allow_private)
    return {"email": email, "sms": sms, "webhook": webhook}
