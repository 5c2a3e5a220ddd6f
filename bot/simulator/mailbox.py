"""A seeded synthetic mailbox and the search semantics of the investigate API.

Each account gets `size` messages spread over the 30 days before the simulator started,
generated from `random.Random` seeded with the configured seed and the account id, so the same
seed always gives the same mailbox (only the absolute times move with the start time).

Search semantics (all case-insensitive unless noted):
- `sender`, `recipient`: substring of the sender / any recipient address (so a domain works too).
- `domain`: substring of the sender domain, a recipient domain or a domain linked in the body.
- `subject`: every space-separated keyword appears in the subject, in any order.
- `exact_subject`: the subject equals the value exactly (case-sensitive).
- `query`: every space-separated term appears in the sender, sender name, recipients, subject,
  attachment names, Message-ID or postfix id.
- `alert_id`, `message_id` (angle brackets optional), `smtp_helo_ip`: exact match.
- `final_disposition`, `delivery_status`, `message_action`: exact value match.
- `detections_only` (default true): only messages whose disposition is not NONE.
- `submissions=true`: only messages that were reported as phish submissions.
- `start` / `end`: inclusive range on the scan time (`scanned_at`).
"""

from __future__ import annotations

import bisect
import random
import string
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.cloudflare.models import DeliveryStatus, Disposition

COMPANY_DOMAIN = "acme-corp.example"
# Every message to this mailbox fails to move: the mailbox was deleted (a documented FAILED trigger).
DEPARTED_MAILBOX = f"former.employee@{COMPANY_DOMAIN}"
DAY = 86400.0
WINDOW = 30 * DAY

_FIRST = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yasmin",
]
_LAST = ["martin", "nguyen", "smith", "garcia", "kowalski", "okafor", "schmidt", "rossi", "dubois", "tanaka"]
_EMPLOYEES = [f"{f}.{last}@{COMPANY_DOMAIN}" for f in _FIRST for last in _LAST[:3]]
_SHARED = [f"finance@{COMPANY_DOMAIN}", f"hr@{COMPANY_DOMAIN}", f"it-helpdesk@{COMPANY_DOMAIN}"]

_LEGIT = [
    ("GitHub", "noreply@github.com"),
    ("Atlassian", "jira@acme-corp.atlassian.net"),
    ("Zoom", "no-reply@zoom.us"),
    ("Northwind Supplies", "billing@northwind-supplies.com"),
    ("Contoso Legal", "paralegal@contoso-legal.com"),
    ("Fabrikam", "accounts@fabrikam.com"),
    ("Slack", "feedback@slack.com"),
    ("Okta", "noreply@okta.com"),
]
_BULK = [
    ("Product Weekly", "newsletter@productweekly.io"),
    ("Tech Digest", "digest@techdigest.news"),
    ("Fabrikam Events", "events@mail.fabrikam.com"),
    ("SaaS Insider", "hello@saasinsider.co"),
]
_SPAM = [
    ("Prize Center", "winner@prize-center.top"),
    ("Pharma Deals", "offers@cheap-meds.biz"),
    ("Crypto Gains", "invest@crypto-gains.click"),
    ("Slim Fast", "promo@slim-now.shop"),
]
_PHISH = [
    ("Microsoft 365", "security@micros0ft-support.com"),
    ("PayPal", "service@paypa1-secure.net"),
    ("DocuSign", "dse@docusign-review.co"),
    ("FedEx", "tracking@fedex-parcel.info"),
    ("IT Helpdesk", "helpdesk@acme-corp-it.com"),
    ("Bank of America", "alerts@secure-bofa.xyz"),
]
_BEC = [("Dana Whitfield (CEO)", "dana.whitfield@acme-corp.co"), ("Accounts Payable", "ap@acme-c0rp.example")]

_SUBJECTS: dict[str, list[str]] = {
    "NONE": [
        "Re: Project {word} status",
        "Meeting notes {date}",
        "Invoice {num} from Northwind Supplies",
        "Lunch on Friday?",
        "[JIRA] OPS-{num} updated",
        "Your pull request #{num} was merged",
        "Password reset for your account",
        "Quarterly report draft",
        "Contract review: {word}",
    ],
    "BULK": [
        "Weekly newsletter: {word}",
        "Your monthly product update",
        "Webinar invitation: {word} at scale",
        "The Tech Digest newsletter - {month}",
        "New features in {word}",
    ],
    "SPAM": [
        "You won a $500 gift card",
        "Lose 10 kg in 10 days",
        "Cheap meds online, no prescription",
        "Crypto investment opportunity",
        "Exclusive offer just for you",
    ],
    "MALICIOUS": [
        "Invoice overdue - action required",
        "Password reset request",
        "Your mailbox is almost full",
        "Unusual sign-in activity",
        "DocuSign: please review and sign",
        "Voicemail received ({num}s)",
        "Shared document: Q{quarter} salaries.xlsx",
        "Payment confirmation #{num}",
    ],
    "MALICIOUS-BEC": [
        "Urgent wire transfer",
        "Are you available? Quick favour",
        "Updated bank details for invoice {num}",
        "Gift cards needed today",
    ],
    "SUSPICIOUS": ["Invoice attached", "Reminder: outstanding balance", "Please confirm your details"],
    "SPOOF": ["Message from the CEO", "HR policy update - read today", "Payroll change confirmation"],
    "ENCRYPTED": ["Encrypted message: {word}", "Secure document delivery"],
    "EXTERNAL": ["Partnership proposal", "Introduction: {word}"],
    "UNKNOWN": ["(no subject)", "Fwd: {word}"],
}
_WORDS = ["Atlas", "Borealis", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Ion", "Juniper"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DISPOSITIONS: list[tuple[str, float]] = [
    ("NONE", 0.70),
    ("BULK", 0.10),
    ("SPAM", 0.08),
    ("MALICIOUS", 0.04),
    ("SUSPICIOUS", 0.03),
    ("SPOOF", 0.02),
    ("MALICIOUS-BEC", 0.01),
    ("ENCRYPTED", 0.01),
    ("EXTERNAL", 0.005),
    ("UNKNOWN", 0.005),
]
_REASONS: dict[str, list[str]] = {
    "MALICIOUS": ["Credential harvesting link", "Lookalike domain of a known brand", "Malicious attachment"],
    "MALICIOUS-BEC": ["Executive impersonation", "Payment redirection request"],
    "SUSPICIOUS": ["Newly registered sender domain", "Unusual sender for this recipient"],
    "SPOOF": ["Sender failed DMARC for a protected domain"],
    "SPAM": ["Known spam campaign"],
    "BULK": ["Bulk sender"],
    "ENCRYPTED": ["Encrypted content could not be scanned"],
    "EXTERNAL": ["External sender"],
    "UNKNOWN": ["Unclassified content"],
}
_THREATS: dict[str, list[str]] = {
    "MALICIOUS": ["CredentialHarvester", "BrandImpersonation", "Malware"],
    "MALICIOUS-BEC": ["BEC", "ExecutiveImpersonation"],
    "SPOOF": ["Spoof"],
}
_OPERATIONS = {"PREVIEW": "PREVIEW", "QUARANTINE_RELEASED": "QUARANTINE_RELEASE", "MOVED": "MOVE"}
_ALNUM = string.ascii_letters + string.digits


def format_ts(value: float) -> str:
    """Render epoch seconds as `2026-11-23T07:00:00Z` (what the API sends)."""
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def format_ts_ms(value: float) -> str:
    """Render epoch seconds with milliseconds (`2026-11-23T07:00:00.123Z`), as job timestamps are."""
    return datetime.fromtimestamp(value, UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


@dataclass(slots=True)
class Message:
    """One synthetic message, with lower-cased copies of what searches look at."""

    id: str
    postfix_id: str
    message_id: str
    alert_id: str | None
    sender: str
    sender_name: str
    recipients: list[str]
    subject: str
    sent_at: float
    scanned_at: float
    disposition: str
    delivery_status: list[str]
    is_phish_submission: bool
    operations: list[str]
    helo_ip: str
    link_domains: list[str]
    attachments: list[str]
    details: dict[str, Any] = field(default_factory=dict)
    sender_lc: str = ""
    recipients_lc: str = ""
    subject_lc: str = ""
    domains_lc: str = ""
    haystack_lc: str = ""
    departed: bool = False
    fail_roll: int = 0

    def finish(self) -> None:
        """Precompute lower-cased search fields and the MessageDetails answer."""
        self.sender_lc = self.sender.lower()
        self.recipients_lc = "\n".join(self.recipients).lower()
        self.subject_lc = self.subject.lower()
        domains = [self.sender.rsplit("@", 1)[-1], *(r.rsplit("@", 1)[-1] for r in self.recipients)]
        self.domains_lc = "\n".join([*domains, *self.link_domains]).lower()
        self.haystack_lc = "\n".join(
            [
                self.sender,
                self.sender_name,
                *self.recipients,
                self.subject,
                *self.attachments,
                self.message_id,
                self.postfix_id,
            ]
        ).lower()
        self.details = self._details()
        self.departed = DEPARTED_MAILBOX in self.recipients
        self.fail_roll = zlib.crc32(self.id.encode()) % 100

    def _details(self) -> dict[str, Any]:
        detected = self.disposition != Disposition.NONE
        spoofed = self.disposition in {"SPOOF", "MALICIOUS-BEC"}
        scanned = format_ts(self.scanned_at)
        details: dict[str, Any] = {
            "id": self.id,
            "postfix_id": self.postfix_id,
            "ts": scanned,
            "scanned_at": scanned,
            "sent_at": format_ts(self.sent_at),
            "sent_date": datetime.fromtimestamp(self.sent_at, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "message_id": self.message_id,
            "alert_id": self.alert_id,
            "from": self.sender,
            "from_name": self.sender_name,
            "envelope_from": self.sender,
            "replyto": self.sender,
            "to": list(self.recipients),
            "to_name": [r.split("@", 1)[0].replace(".", " ").title() for r in self.recipients],
            "envelope_to": list(self.recipients),
            "client_recipients": list(self.recipients),
            "subject": self.subject,
            "final_disposition": self.disposition,
            "delivery_status": list(self.delivery_status),
            "delivery_mode": "DIRECT",
            "detection_reasons": list(_REASONS.get(self.disposition, [])) if detected else [],
            "threat_categories": list(_THREATS.get(self.disposition, [])),
            "action_log": [],
            "is_quarantined": "quarantined" in self.delivery_status,
            "is_phish_submission": self.is_phish_submission,
            "post_delivery_operations": list(self.operations),
            "properties": {},
            "smtp_helo_server_ip": self.helo_ip,
            "smtp_previous_hop_ip": self.helo_ip,
            "x_originating_ip": self.helo_ip,
            "validation": {
                "spf": "fail" if spoofed else "pass",
                "dkim": "none" if spoofed else "pass",
                "dmarc": "fail" if spoofed else "pass",
                "comment": None,
            },
            "edf_hash": None,
            "htmltext_structure_hash": None,
            "postfix_id_outbound": None,
            "findings": None,
        }
        return details


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """A parsed search. Times are epoch seconds; None means "no bound"."""

    start: float | None = None
    end: float | None = None
    detections_only: bool = True
    query: str | None = None
    final_disposition: str | None = None
    message_action: str | None = None
    recipient: str | None = None
    sender: str | None = None
    alert_id: str | None = None
    domain: str | None = None
    message_id: str | None = None
    subject: str | None = None
    exact_subject: str | None = None
    delivery_status: str | None = None
    smtp_helo_ip: str | None = None
    submissions: bool = False

    def key(self) -> tuple[Any, ...]:
        """Return the non-time part of the filter, for caching."""
        return (
            self.detections_only,
            self.query,
            self.final_disposition,
            self.message_action,
            self.recipient,
            self.sender,
            self.alert_id,
            self.domain,
            self.message_id,
            self.subject,
            self.exact_subject,
            self.delivery_status,
            self.smtp_helo_ip,
            self.submissions,
        )

    def matches(self, m: Message) -> bool:
        """Return True when `m` satisfies every set criterion except the time range."""
        if self.detections_only and m.disposition == Disposition.NONE:
            return False
        if self.final_disposition is not None and m.disposition != self.final_disposition:
            return False
        if self.delivery_status is not None and self.delivery_status not in m.delivery_status:
            return False
        if self.message_action is not None and _OPERATIONS[self.message_action] not in m.operations:
            return False
        if self.submissions and not m.is_phish_submission:
            return False
        if self.sender is not None and self.sender.lower() not in m.sender_lc:
            return False
        if self.recipient is not None and self.recipient.lower() not in m.recipients_lc:
            return False
        if self.domain is not None and self.domain.lower() not in m.domains_lc:
            return False
        if self.alert_id is not None and (m.alert_id or "").lower() != self.alert_id.lower():
            return False
        if self.message_id is not None and _bare(m.message_id) != _bare(self.message_id):
            return False
        if self.smtp_helo_ip is not None and m.helo_ip != self.smtp_helo_ip.strip():
            return False
        if self.exact_subject is not None and m.subject != self.exact_subject:
            return False
        if self.subject is not None and not all(w in m.subject_lc for w in self.subject.lower().split()):
            return False
        return self.query is None or all(t in m.haystack_lc for t in self.query.lower().split())


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>").lower()


@dataclass(frozen=True, slots=True)
class Discovery:
    """The result of one search: matching message indices (newest first) and which are actionable.

    Phish submissions are found but cannot be actioned: a bulk job skips them.
    """

    found: tuple[int, ...]
    skip_prefix: tuple[int, ...]  # skip_prefix[k]: skipped messages among the first k found
    actionable: tuple[int, ...]  # positions in `found` of the messages a job acts on, in order
    # Failure prefix sums per job salt (filled by the state; the discovery itself never changes).
    fail_cache: dict[int, list[int]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def skipped(self) -> int:
        """Return how many found messages a job skips."""
        return self.skip_prefix[-1]


class Mailbox:
    """The messages of one account, newest first, with a small search cache."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = sorted(messages, key=lambda m: (-m.scanned_at, m.id))
        self._neg_times = [-m.scanned_at for m in self.messages]
        self._cache: dict[tuple[Any, ...], Discovery] = {}

    def __len__(self) -> int:
        return len(self.messages)

    def search(self, criteria: SearchFilter) -> Discovery:
        """Return the messages matching `criteria` (cached: the mailbox never changes)."""
        lo = 0 if criteria.end is None else bisect.bisect_left(self._neg_times, -criteria.end)
        hi = len(self.messages)
        if criteria.start is not None:
            hi = bisect.bisect_right(self._neg_times, -criteria.start)
        key = (*criteria.key(), lo, hi)
        found = self._cache.get(key)
        if found is None:
            indices = tuple(i for i in range(lo, hi) if criteria.matches(self.messages[i]))
            prefix = [0]
            actionable = []
            for position, index in enumerate(indices):
                skipped = self.messages[index].is_phish_submission
                prefix.append(prefix[-1] + skipped)
                if not skipped:
                    actionable.append(position)
            found = Discovery(indices, tuple(prefix), tuple(actionable))
            if len(self._cache) >= 1024:
                self._cache.clear()
            self._cache[key] = found
        return found


# Mailboxes are immutable, so simulators started in the same process within REUSE_SECONDS of each
# other share them (tests start one simulator per test; generating 3000 messages takes ~0.2 s).
REUSE_SECONDS = 600.0
_GENERATED: dict[tuple[int, int, str], tuple[float, Mailbox]] = {}


def generate_mailbox(*, seed: int, size: int, now: float, account_id: str) -> Mailbox:
    """Return the deterministic synthetic mailbox of one account (messages in the 30 days before `now`)."""
    key = (seed, size, account_id)
    cached = _GENERATED.get(key)
    if cached is not None and 0 <= now - cached[0] <= REUSE_SECONDS:
        return cached[1]
    mailbox = _generate(seed=seed, size=size, now=now, account_id=account_id)
    if len(_GENERATED) >= 32:
        _GENERATED.clear()
    _GENERATED[key] = (now, mailbox)
    return mailbox


def _generate(*, seed: int, size: int, now: float, account_id: str) -> Mailbox:
    rng = random.Random(seed * 1_000_003 + zlib.crc32(account_id.encode()))
    names = [d for d, _ in _DISPOSITIONS]
    weights = [w for _, w in _DISPOSITIONS]
    messages = []
    for n in range(size):
        disposition = rng.choices(names, weights)[0]
        messages.append(_message(rng, n, disposition, now))
    return Mailbox(messages)


def _token(rng: random.Random, length: int) -> str:
    number = rng.getrandbits(6 * length)
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(_ALNUM[digit])
    return "".join(chars)


def _message(rng: random.Random, n: int, disposition: str, now: float) -> Message:
    scanned = now - rng.random() * WINDOW
    sent = scanned - rng.uniform(1, 90)
    if disposition in {"MALICIOUS", "SUSPICIOUS"}:
        name, sender = rng.choice(_PHISH)
    elif disposition == "MALICIOUS-BEC":
        name, sender = rng.choice(_BEC)
    elif disposition == "SPAM":
        name, sender = rng.choice(_SPAM)
    elif disposition == "BULK":
        name, sender = rng.choice(_BULK)
    elif disposition == "SPOOF":
        name, sender = "Dana Whitfield", f"dana.whitfield@{COMPANY_DOMAIN}"
    else:
        name, sender = rng.choice(_LEGIT)
    roll = rng.random()
    if roll < 0.01:
        recipients = [DEPARTED_MAILBOX]
    elif roll < 0.08:
        recipients = [rng.choice(_SHARED)]
    else:
        recipients = [rng.choice(_EMPLOYEES)]
    sent_day = datetime.fromtimestamp(sent, UTC).date()
    subject = rng.choice(_SUBJECTS[disposition]).format(
        word=rng.choice(_WORDS),
        num=rng.randint(1000, 99999),
        date=sent_day.isoformat(),
        month=_MONTHS[sent_day.month - 1],
        quarter=rng.randint(1, 4),
    )
    delivery = _delivery(rng, disposition)
    postfix_id = _token(rng, 16)
    detected = disposition != Disposition.NONE
    operations: list[str] = []
    if "quarantined" in delivery and rng.random() < 0.3:
        operations.append("PREVIEW")
    if DeliveryStatus.MOVED in delivery:
        operations.append("MOVE")
    if detected and "delivered" in delivery and rng.random() < 0.05:
        operations.append("QUARANTINE_RELEASE")
    sender_domain = sender.rsplit("@", 1)[-1]
    message = Message(
        id=f"{postfix_id}-{format_ts(scanned)[:-1]}-{rng.randint(10_000_000, 99_999_999)}",
        postfix_id=postfix_id,
        message_id=f"<{_token(rng, 24).lower()}@{sender_domain}>",
        alert_id=f"{postfix_id}-{rng.getrandbits(32):08x}" if detected else None,
        sender=sender,
        sender_name=name,
        recipients=recipients,
        subject=subject,
        sent_at=sent,
        scanned_at=scanned,
        disposition=disposition,
        delivery_status=delivery,
        is_phish_submission=rng.random() < 0.02,
        operations=operations,
        helo_ip=f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        link_domains=[sender_domain] if rng.random() < 0.6 else [],
        attachments=[f"{rng.choice(_WORDS).lower()}-{n}.pdf"] if rng.random() < 0.2 else [],
    )
    message.finish()
    return message


def campaign(
    *,
    seed: int,
    count: int,
    now: float,
    days: float,
    sender: str,
    sender_name: str,
    subject: str,
    disposition: str = "MALICIOUS",
) -> list[Message]:
    """Return `count` messages of one campaign: one sender and subject to many employees.

    Received over the `days` before `now` and delivered (it got past the filters: someone must move
    it). The same arguments always give the same messages; add them with `SimulatorState.add_mail`.
    """
    rng = random.Random(seed * 1_000_003 + zlib.crc32(f"{sender}\n{subject}".encode()))
    sender_domain = sender.rsplit("@", 1)[-1]
    messages = []
    for _ in range(count):
        scanned = now - rng.random() * days * DAY
        postfix_id = _token(rng, 16)
        octets = (rng.randint(11, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))
        helo_ip = ".".join(map(str, octets))
        message = Message(
            id=f"{postfix_id}-{format_ts(scanned)[:-1]}-{rng.randint(10_000_000, 99_999_999)}",
            postfix_id=postfix_id,
            message_id=f"<{_token(rng, 24).lower()}@{sender_domain}>",
            alert_id=f"{postfix_id}-{rng.getrandbits(32):08x}" if disposition != Disposition.NONE else None,
            sender=sender,
            sender_name=sender_name,
            recipients=[rng.choice([*_EMPLOYEES, *_SHARED])],
            subject=subject,
            sent_at=scanned - rng.uniform(1, 90),
            scanned_at=scanned,
            disposition=disposition,
            delivery_status=[DeliveryStatus.DELIVERED.value],
            is_phish_submission=rng.random() < 0.02,
            operations=[],
            helo_ip=helo_ip,
            link_domains=[sender_domain],
            attachments=[],
        )
        message.finish()
        messages.append(message)
    return messages


def _delivery(rng: random.Random, disposition: str) -> list[str]:
    roll = rng.random()
    if disposition in {"MALICIOUS", "MALICIOUS-BEC"}:
        return ["quarantined"] if roll < 0.85 else ["delivered"]
    if disposition in {"SPAM", "SPOOF", "SUSPICIOUS"}:
        return ["moved"] if roll < 0.5 else (["quarantined"] if roll < 0.7 else ["delivered"])
    if roll < 0.93:
        return ["delivered"]
    return [rng.choice(["deferred", "bounced", "rejected", "queued"])]
