"""``heatcrew simulate``: phones working a day against a running server, over a bad network.

Each simulated phone is the reference client (``mobile_contract.client``) with its own outbox. The
dispatcher creates the day's orders; the phones accept, call, travel, knock, photograph, note and
complete them, going offline at random, losing answers and sending batches again. At the end a
supervisor reads every order's timeline back over the API and checks it against the phones' own
ledger: nothing lost, nothing applied twice.
"""

import io
import random
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mobile_contract.client import Offline, OutboxClient

__all__ = ("SimulationResult", "simulate")

FIELD_USERS = ("tech1", "tech2")
PASSWORD = "demo-password"


class FlakyNetwork:
    """Drops the connection or the answer now and then, like a phone in a stairwell."""

    def __init__(
        self, http: httpx.Client, rng: random.Random, *, offline_rate: float, loss_rate: float
    ) -> None:
        self.http = http
        self.rng = rng
        self.offline_rate = offline_rate
        self.loss_rate = loss_rate
        self.offline_spell = 0
        self.lost = 0
        self.actions_sent = 0

    def new_attempt(self) -> None:
        """A sync attempt happens in or out of coverage; a basement keeps a phone out for a while."""
        if self.offline_spell > 0:
            self.offline_spell -= 1
        elif self.rng.random() < self.offline_rate:
            self.offline_spell = self.rng.randint(1, 3)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.offline_spell > 0:
            raise httpx.ConnectError("offline")
        response = self.http.request(method, url, **kwargs)
        if url.endswith("/sync/push"):
            self.actions_sent += len(kwargs.get("json", {}).get("actions", []))
        if url.endswith("/sync/push") and self.rng.random() < self.loss_rate:
            self.lost += 1
            raise httpx.ReadError("answer lost")
        return response


@dataclass
class SimulationResult:
    phones: int = 0
    orders: int = 0
    actions_queued: int = 0
    sent: int = 0
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    waiting: int = 0
    out_of_order: int = 0
    answers_lost: int = 0
    sync_attempts: int = 0
    offline_failures: int = 0
    notes_taken: int = 0
    lost: int = 0
    duplicated: int = 0
    pending_at_end: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.pending_at_end == 0


def _photo_bytes(rng: random.Random) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (64, 48), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=70)
    return out.getvalue()


def _login(http: httpx.Client, username: str) -> dict[str, str]:
    response = http.post(
        "/api/v1/auth/login",
        json={
            "username": username,
            "password": PASSWORD,
            "device": {"id": f"simulator-{username}-console", "platform": "web", "app_version": "sim"},
        },
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _create_orders(http: httpx.Client, rng: random.Random, per_user: int) -> int:
    dispatcher = _login(http, "dispatcher1")
    households = http.get("/api/v1/households", params={"limit": 200}, headers=dispatcher).json()
    users = {u["username"]: u["id"] for u in http.get("/api/v1/users", headers=dispatcher).json()}
    created = 0
    for username in FIELD_USERS:
        for _ in range(per_user):
            response = http.post(
                "/api/v1/work-orders",
                json={
                    "kind": rng.choice(["leak", "repair", "routine_maintenance"]),
                    "household_id": rng.choice(households)["id"],
                    "source": "hotline",
                    "description": "simulated call",
                    "assignee_id": users[username],
                },
                headers=dispatcher,
            )
            response.raise_for_status()
            created += 1
    return created


def _day_of(
    phone: OutboxClient, rng: random.Random, run: str, ledger: Counter[str], result: SimulationResult
) -> None:
    """Queue a day's work on every order the phone holds, in the order a technician does it."""
    for order_id in sorted(phone.local("work_order")):
        steps: list[tuple[str, dict[str, Any]]] = [
            ("work_order.accept", {}),
            ("work_order.contact", {"outcome": "reached", "note": "约好上门"}),
            ("work_order.depart", {}),
            (
                "work_order.arrive",
                {
                    "lat": 41.79 + rng.random() / 100,
                    "lon": 123.42 + rng.random() / 100,
                    "accuracy_m": rng.uniform(5, 40),
                    "attempts": [],
                    "outcome": "admitted",
                    "badge_shown": True,
                },
            ),
            ("work_order.start", {}),
        ]
        for action_type, payload in steps:
            phone.enqueue(action_type, {"work_order_id": order_id, **payload})
            result.actions_queued += 1
        for _ in range(rng.randint(1, 3)):
            text = f"{run} note {sum(ledger.values())}"
            phone.enqueue("work_order.note", {"work_order_id": order_id, "text": text})
            ledger[text] += 1
            result.actions_queued += 1
        for purpose in ("before", "after"):  # what the company asks of a repair before it is done
            sha = phone.attach_file(_photo_bytes(rng))
            phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": sha, "purpose": purpose})
        phone.enqueue(
            "work_order.complete", {"work_order_id": order_id, "result": "fixed", "satisfaction": 5}
        )
        result.actions_queued += 3


def _sync(phone: OutboxClient, network: FlakyNetwork, result: SimulationResult) -> None:
    network.new_attempt()
    result.sync_attempts += 1
    try:
        push, _ = phone.sync()
    except Offline:
        result.offline_failures += 1
        return
    result.applied += push.applied
    result.duplicates += push.duplicates
    result.conflicts += push.conflicts
    result.rejected += push.rejected
    result.waiting += push.waiting
    result.out_of_order += push.out_of_order


def simulate(
    base_url: str,
    *,
    phones: int = 4,
    orders_per_user: int = 3,
    rounds: int = 12,
    offline_rate: float = 0.2,
    loss_rate: float = 0.2,
    seed: int = 1,
    console: Console | None = None,
) -> SimulationResult:
    rng = random.Random(seed)
    run = f"sim-{uuid.uuid4().hex[:8]}"
    result = SimulationResult(phones=phones)
    console = console or Console()
    workdir = Path(tempfile.mkdtemp(prefix="heatcrew-sim-"))
    http = httpx.Client(base_url=base_url, timeout=60)
    result.orders = _create_orders(http, rng, orders_per_user)
    fleet: list[tuple[OutboxClient, FlakyNetwork]] = []
    for i in range(phones):
        # The day starts at the depot on a good connection: log in and take the day's pack.
        network = FlakyNetwork(
            httpx.Client(base_url=base_url, timeout=60), rng, offline_rate=0.0, loss_rate=0.0
        )
        phone = OutboxClient(network, workdir / f"phone-{i}.sqlite", device_id=f"{run}-phone-{i}")
        phone.login(FIELD_USERS[i % len(FIELD_USERS)], PASSWORD)
        fleet.append((phone, network))
    ledger: Counter[str] = Counter()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("phones at work", total=rounds + 3)
        for phone, network in fleet:
            phone.pull()
            _day_of(phone, rng, run, ledger, result)
            network.offline_rate, network.loss_rate = offline_rate, loss_rate  # then out into the basements
        for _ in range(rounds):
            for phone, network in rng.sample(fleet, len(fleet)):
                _sync(phone, network, result)
            progress.advance(task)
        for _ in range(3):  # back at the depot: good signal
            for phone, network in fleet:
                network.offline_rate = network.loss_rate = 0.0
                network.offline_spell = 0
                _sync(phone, network, result)
            progress.advance(task)
    for phone, network in fleet:
        result.answers_lost += network.lost
        result.sent += network.actions_sent
        result.pending_at_end += len(phone.pending())
    result.notes_taken = sum(ledger.values())
    _verify(http, run, ledger, result)
    for phone, _ in fleet:
        phone.close()
    return result


def _verify(http: httpx.Client, run: str, ledger: Counter[str], result: SimulationResult) -> None:
    supervisor = _login(http, "supervisor1")
    on_server: Counter[str] = Counter()
    offset = 0
    while True:
        page = http.get(
            "/api/v1/work-orders", params={"limit": 200, "offset": offset}, headers=supervisor
        ).json()
        for order in page:
            detail = http.get(f"/api/v1/work-orders/{order['id']}", headers=supervisor).json()
            for event in detail["timeline"]:
                text = event["data"].get("text", "")
                if event["type"] == "note" and text.startswith(run):
                    on_server[text] += 1
        if len(page) < 200:
            break
        offset += 200
    result.lost = sum(1 for text in ledger if on_server[text] == 0)
    result.duplicated = sum(1 for text in on_server if on_server[text] > 1 or text not in ledger)
    if result.lost:
        result.problems.append(f"{result.lost} notes taken on phones are missing on the server")
    if result.duplicated:
        result.problems.append(f"{result.duplicated} notes are on the server more than once")


def print_summary(result: SimulationResult, console: Console) -> None:
    table = Table(title="HeatCrew simulation", show_header=False)
    for label, value in (
        ("phones", result.phones),
        ("orders created", result.orders),
        ("actions queued on phones", result.actions_queued),
        ("actions sent (with resends)", result.sent),
        ("applied", result.applied),
        ("duplicates answered", result.duplicates),
        ("conflicts", result.conflicts),
        ("rejected", result.rejected),
        ("waiting (photo not uploaded yet)", result.waiting),
        ("out of order", result.out_of_order),
        ("answers lost on the way back", result.answers_lost),
        ("sync attempts / failed offline", f"{result.sync_attempts} / {result.offline_failures}"),
        ("notes taken in the field", result.notes_taken),
        ("lost", result.lost),
        ("duplicated", result.duplicated),
        ("still queued at the end", result.pending_at_end),
    ):
        table.add_row(label, str(value))
    console.print(table)
    for problem in result.problems:
        console.print(f"[red]{problem}[/red]")
    console.print("[green]nothing lost, nothing applied twice[/green]" if result.ok else "[red]FAILED[/red]")
