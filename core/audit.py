from typing import Any

from core.models import AuditEvent


def record_audit(
    *,
    event: str,
    actor: Any = None,
    organization: Any = None,
    target: str = "",
    old: Any = None,
    new: Any = None,
) -> AuditEvent:
    """Write an audit row; call it inside the service's transaction."""
    return AuditEvent.objects.create(
        event=event,
        actor=actor if getattr(actor, "pk", None) else None,
        organization=organization,
        target=target,
        old_value=old,
        new_value=new,
    )
