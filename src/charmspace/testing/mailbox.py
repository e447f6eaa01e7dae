"""A generated mailbox, as Gmail stores and shows it, and Gmail's search language over it.

Messages are real MIME (built with :mod:`email`), made from a seed so every
run has the same mail, in the shapes real mail has: text/plain in UTF-8
(8bit, quoted-printable, base64) and ISO-8859-1, HTML only,
multipart/alternative, and multipart/mixed with an attachment.
:func:`gmail_payload` turns one into Gmail's ``payload`` JSON; :func:`parse_query`
turns a ``q`` into a predicate.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.charset import BASE64, QP, Charset
from email.header import decode_header, make_header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime
from typing import Any

PEOPLE = (
    ("Ada Lovelace", "ada@analytical.example"),
    ("Grace Hopper", "grace@navy.example"),
    ("José Núñez", "jose@correo.example"),
    ("Zoë Müller", "zoe@beispiel.example"),
    ("Travel Desk", "bookings@travel.example"),
    ("Acme Billing", "billing@acme.example"),
    ("Newsletter", "news@weekly.example"),
)
TOPICS = (
    ("Invoice {n} for October", "Your invoice {n} is attached. Total due: {amount} EUR."),
    ("Flight confirmation {n}", "Your flight to Lisbon is confirmed. Booking reference {n}."),
    ("Lunch on Friday?", "Are you free for lunch on Friday? The café near the station."),
    ("Quarterly report draft", "Here is the draft of the quarterly report, section {n}."),
    ("Résumé for the role", "Please find my résumé; I look forward to hearing from you."),
    ("Weekly digest #{n}", "This week: storage engines, reactive programs and more."),
    ("Hotel reservation {n}", "Your hotel reservation in Porto is confirmed for {n} nights."),
)
SHAPES = ("plain", "plain_qp", "plain_latin1", "plain_base64", "html", "alternative", "mixed")
ME = "me@example.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


@dataclass(frozen=True)
class StoredMessage:
    id: str
    thread_id: str
    history_id: int
    internal_date: int  # epoch milliseconds, as Gmail
    labels: tuple[str, ...]
    mime: Message
    sender: str
    to: str
    subject: str
    text: str  # what plain words are searched in
    shape: str

    @property
    def snippet(self) -> str:
        return " ".join(self.text.split())[:100]


def _text_part(text: str, subtype: str, charset: str, encoding: str | None) -> MIMEText:
    cs = Charset(charset)
    # None means 7bit/8bit; typeshed types the attribute as int only.
    cs.body_encoding = {"qp": QP, "base64": BASE64}.get(encoding or "")  # type: ignore[assignment]
    part = MIMEText("", subtype, None)
    del part["Content-Transfer-Encoding"]
    part.set_payload(text, cs)
    return part


def _html(text: str) -> str:
    return (
        "<html><head><style>p{color:red}</style></head><body>"
        f"<p>{text.replace('&', '&amp;')}</p><p>Kind regards,<br>the sender</p></body></html>"
    )


def build_mime(shape: str, text: str, boundary: str = "part") -> Message:
    """A message body of ``shape`` (one of :data:`SHAPES`) saying ``text``."""
    if shape == "plain":
        return _text_part(text, "plain", "utf-8", None)
    if shape == "plain_qp":
        return _text_part(text, "plain", "utf-8", "qp")
    if shape == "plain_latin1":
        return _text_part(text, "plain", "iso-8859-1", "qp")
    if shape == "plain_base64":
        return _text_part(text, "plain", "utf-8", "base64")
    if shape == "html":
        return _text_part(_html(text), "html", "utf-8", "qp")
    alternative = MIMEMultipart("alternative", boundary=f"{boundary}-alt")
    alternative.attach(_text_part(text, "plain", "utf-8", "qp"))
    alternative.attach(_text_part(_html(text), "html", "utf-8", "base64"))
    if shape == "alternative":
        return alternative
    mixed = MIMEMultipart("mixed", boundary=f"{boundary}-mixed")
    mixed.attach(alternative)
    attachment = MIMEApplication(b"%PDF-1.4 fake attachment " + text.encode(), "pdf")
    attachment.add_header("Content-Disposition", "attachment", filename="document.pdf")
    mixed.attach(attachment)
    return mixed


def _header(value: object) -> str:
    """A header as Gmail shows it: unfolded, RFC 2047 encoded words decoded."""
    unfolded = re.sub(r"\r?\n[ \t]+", " ", str(value))
    return str(make_header(decode_header(unfolded)))


def gmail_payload(part: Message, part_id: str, message_id: str) -> dict[str, Any]:
    """Gmail's ``payload`` for one MIME part: headers, a base64url body, and its parts."""
    headers = [{"name": k, "value": _header(v)} for k, v in part.items()]
    node: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": headers,
    }
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        prefix = "" if part_id == "" else f"{part_id}."
        node["body"] = {"size": 0}
        node["parts"] = [
            gmail_payload(c, f"{prefix}{i}", message_id) for i, c in enumerate(children)
        ]
        return node
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    if part.get_filename():
        node["body"] = {"attachmentId": f"att-{message_id}-{part_id}", "size": len(data)}
    else:
        node["body"] = {"size": len(data), "data": _b64(data)}
    return node


def generate_messages(count: int, seed: int, now: float) -> list[StoredMessage]:
    """``count`` messages, newest first, spread over the year before ``now``."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        name, address = rng.choice(PEOPLE)
        subject_t, body_t = rng.choice(TOPICS)
        n = rng.randint(100, 9999)
        subject = subject_t.format(n=n)
        text = f"Hello,\n\n{body_t.format(n=n, amount=rng.randint(10, 900))}\n\n-- {name}\n"
        shape = SHAPES[i % len(SHAPES)]
        when = now - i * 86_400 * 365 / max(count, 1) - rng.randint(0, 3600)
        mime = build_mime(shape, text, boundary=f"b{seed}.{i}")
        mime["From"] = f"{name} <{address}>"
        mime["To"] = ME
        mime["Subject"] = subject
        mime["Date"] = format_datetime(datetime.fromtimestamp(when, UTC))
        mime["Message-ID"] = f"<{seed}.{i}@fake.example>"
        ident = f"{rng.getrandbits(64):016x}"
        labels = ("INBOX", "UNREAD") if i % 3 == 0 else ("INBOX",)
        out.append(
            StoredMessage(
                id=ident,
                thread_id=ident,
                history_id=10_000 + count - i,
                internal_date=int(when * 1000),
                labels=labels,
                mime=message_from_bytes(mime.as_bytes(), policy=policy.compat32),
                sender=f"{name} <{address}>",
                to=ME,
                subject=subject,
                text=text,
                shape=shape,
            )
        )
    return out


# --- the q language -------------------------------------------------------------------

_TERM = re.compile(r'(-?)(?:(\w+):)?("[^"]*"|\([^)]*\)|\S+)')
_UNITS = {"d": 86_400, "m": 30 * 86_400, "y": 365 * 86_400}


def _date(value: str) -> float:
    if value.isdigit():
        return float(value)
    for fmt in ("%Y/%m/%d", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    raise ValueError(f"Invalid date: {value}")


def _term(op: str | None, value: str, now: float) -> Callable[[StoredMessage], bool]:
    words = value.strip('"()').lower()
    if op in ("from", "to", "subject"):
        field_of = {"from": "sender", "to": "to", "subject": "subject"}[op]
        return lambda m: words in getattr(m, field_of).lower()
    if op in ("after", "before"):
        at = _date(value)
        if op == "after":
            return lambda m: m.internal_date / 1000 >= at
        return lambda m: m.internal_date / 1000 < at
    if op in ("newer_than", "older_than"):
        match = re.fullmatch(r"(\d+)([dmy])", value)
        if not match:
            raise ValueError(f"Invalid {op} value: {value}")
        cut = now - int(match[1]) * _UNITS[match[2]]
        if op == "newer_than":
            return lambda m: m.internal_date / 1000 >= cut
        return lambda m: m.internal_date / 1000 < cut
    if op in ("is", "label", "in"):
        label = value.upper()
        return lambda m: label in m.labels
    if op == "has" and value == "attachment":
        return lambda m: m.shape == "mixed"
    if op is not None:  # an unknown operator is searched as words, as Gmail does
        words = f"{op}:{words}"
    phrase = words

    def contains(m: StoredMessage) -> bool:
        return phrase in f"{m.subject}\n{m.sender}\n{m.text}".lower()

    return contains


def parse_query(q: str, now: float) -> Callable[[StoredMessage], bool]:
    """Gmail's search syntax, the part people type: operators, words, ``OR``, ``-``."""
    groups: list[list[Callable[[StoredMessage], bool]]] = []
    join_next = False
    for match in _TERM.finditer(q):
        negate, op, value = match[1], match[2], match[3]
        if op is None and not negate and value in ("OR", "|"):
            join_next = bool(groups)
            continue
        test = _term(op.lower() if op else None, value, now)
        if negate:
            test = (lambda t: lambda m: not t(m))(test)
        if join_next:
            groups[-1].append(test)
        else:
            groups.append([test])
        join_next = False
    return lambda m: all(any(t(m) for t in group) for group in groups)
