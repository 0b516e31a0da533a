"""A signed document as the paper a resident keeps: composed from the database, laid out by pdf.py.

Times are shown in the company's zone. A signature drawn on the phone arrives as an uploaded image
or as strokes; strokes are drawn here. Every page carries the content hash and the reference that
opens the resident's copy and its verification.
"""

import io
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from backend.evidence import documents
from backend.evidence.measurements import judge
from backend.evidence.models import Document, Measurement, Signature
from backend.evidence.pdf import PdfDocument, PdfTable, SignatureBlock
from backend.org.models import Company
from backend.storage import BlobStore
from backend.work_orders.sla import load_policy

__all__ = ("compose",)

TITLES = {
    "receipt": "供热维修服务回执 Service receipt",
    "damage_slip": "损坏责任确认单 Damage responsibility slip",
    "measurement": "室内温度测量记录 Indoor temperature record",
    "meter": "换表/校表记录 Meter record",
    "stop_resume": "报停/复热确认单 Heating stop / resume record",
}
ROLES = {"resident": "住户 Resident", "technician": "维修工 Technician", "inspector": "测温员 Inspector"}
LABELS = {
    "order_ref": "工单号 Order",
    "technician_name": "维修工 Technician",
    "staff_number": "工号 Staff no.",
    "resident_name": "住户 Resident",
    "address": "地址 Address",
    "arrived_at": "到达时间 Arrived",
    "completed_at": "完成时间 Completed",
    "found": "故障情况 Found",
    "done": "处理情况 Done",
    "result": "处理结果 Result",
    "satisfaction": "满意度 Satisfaction (1-5)",
    "parts_used": "更换配件 Parts used",
    "cause": "损坏原因 Cause",
    "damage": "损坏情况 Damage",
    "operation": "作业 Operation",
    "meter_id": "表号 Meter",
    "new_meter_id": "新表号 New meter",
    "reading_before": "作业前读数 Reading before",
    "reading_after": "作业后读数 Reading after",
    "checked": "现场检查 On-site check",
    "seal_number": "铅封号 Seal no.",
    "instrument_id": "测温仪 Instrument",
    "outdoor_c": "室外温度 Outdoor °C",
    "closed_minutes": "门窗关闭 Closed (min)",
    "measured_at": "测量时间 Measured",
    "note": "备注 Note",
}
RESULTS = {
    "fixed": "已修复 fixed",
    "temporary_fix": "临时处理 temporary fix",
    "not_fixed": "未修复 not fixed",
    "answered": "已答复 answered",
    "no_fault_found": "未发现故障 no fault found",
    "pass": "达标 meets the standard",
    "fail": "不达标 below the standard",
    "not_applicable": "不适用（室外低于设计温度）not applicable",
    "incomplete": "程序不完整 procedure incomplete",
}
HIDDEN = {"work_order_id", "household_id", "measurement_id", "rooms", "supersedes", "supersede_reason"}


def compose(session: Session, blobs: BlobStore, document: Document, *, reference: str) -> PdfDocument:
    company = session.get(Company, document.company_id)
    assert company is not None
    zone = ZoneInfo(company.timezone)
    content: dict[str, Any] = json.loads(document.content)
    fields = [
        (LABELS.get(name, name), _value(name, value, zone))
        for name, value in content.items()
        if name not in HIDDEN and value not in (None, [], "")
    ]
    table = None
    if document.type == "measurement":
        table, verdict = _measurement(session, document, company)
        fields.append(("结论 Result", verdict))
    signatures = documents.signatures_of(session, document.id)
    verification = documents.verify(session, document, signatures)
    status = {
        "valid": "有效 valid",
        "awaiting_signatures": "待签 awaiting signatures",
        "superseded": "已更正 superseded",
        "tampered": "内容被改动 ALTERED",
    }[verification.status]
    fields.append(("状态 Status", status))
    note = None
    if document.superseded_by_id is not None:
        note = f"本文件已被更正 This document was superseded by {document.superseded_by_id}"
    elif document.supersedes_id is not None:
        note = f"更正 Corrects {document.supersedes_id}: {document.supersede_reason}"
    return PdfDocument(
        title=TITLES.get(document.type, document.type),
        company=company.name,
        reference=reference,
        fields=fields,
        table=table,
        signatures=[_signature(blobs, s, zone) for s in signatures],
        content_sha256=document.content_sha256,
        verify_hint=f"/api/v1/public/documents/{reference}",
        issued_at=_local(document.corrected_at, zone),
        superseded_note=note,
    )


def _local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _value(name: str, value: Any, zone: ZoneInfo) -> str:
    if name.endswith("_at") and isinstance(value, str):
        try:
            return _local(datetime.fromisoformat(value), zone)
        except ValueError:
            return value
    if name == "result":
        return RESULTS.get(value, str(value))
    if isinstance(value, list):
        return "、".join(map(str, value))
    return str(value)


def _measurement(session: Session, document: Document, company: Company) -> tuple[PdfTable, str]:
    row = session.get(Measurement, document.id)
    rooms = row.rooms if row is not None else json.loads(document.content).get("rooms", [])
    verdict = "—"
    if row is not None:
        result = judge(
            row, timezone=company.timezone, design_outdoor_min_c=load_policy(company).design_outdoor_min_c
        )
        verdict = f"{RESULTS[result.result]}（{result.period} ≥ {result.threshold_c} °C）"
        if result.problems:
            verdict += "；" + "；".join(result.problems)
    kinds = {
        "bedroom": "卧室",
        "living_room": "客厅",
        "kitchen": "厨房",
        "bathroom": "卫生间",
        "other": "其他",
    }
    body = []
    for room in rooms:
        readings = room.get("readings_c", [])
        mean = f"{sum(readings) / len(readings):.1f}" if readings else "—"
        body.append(
            [
                str(room.get("name")),
                kinds.get(room.get("kind", ""), str(room.get("kind"))),
                " / ".join(f"{r:.1f}" for r in readings),
                mean,
                "—" if room.get("height_m") is None else f"{room['height_m']:.2f}",
            ]
        )
    header = ["房间 Room", "类型 Kind", "读数 Readings °C", "均值 Mean °C", "高度 Height m"]
    return PdfTable(header=header, rows=body), verdict


def _signature(blobs: BlobStore, s: Signature, zone: ZoneInfo) -> SignatureBlock:
    image = None
    if s.refused_reason is None:
        image = _image(blobs, s.blob_sha256) if s.blob_sha256 else _strokes(s.strokes or [])
    return SignatureBlock(
        role_label=ROLES.get(s.signer_role, s.signer_role),
        name=s.signer_name,
        signed_at=_local(s.corrected_at, zone),
        image_png=image,
        refused_reason=s.refused_reason,
    )


def _image(blobs: BlobStore, sha256: str) -> bytes | None:
    from PIL import Image  # loads with the first document printed, not the worker

    try:
        data = b"".join(blobs.open(sha256))
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((600, 240))
            out = io.BytesIO()
            img.convert("RGBA").save(out, format="PNG")
            return out.getvalue()
    except Exception:  # a missing or unreadable image prints as "not signed", never a 500
        return None


def _strokes(strokes: list[Any]) -> bytes | None:
    """Draw the pen strokes (x, y, t) into a PNG, scaled to fit 480×180."""
    from PIL import Image, ImageDraw

    points = [(float(p[0]), float(p[1])) for stroke in strokes for p in stroke]
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    width, height, pad = 480, 180, 10
    dx, dy = max(max(xs) - min(xs), 1e-9), max(max(ys) - min(ys), 1e-9)
    scale = min((width - 2 * pad) / dx, (height - 2 * pad) / dy)
    img = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        line = [
            (pad + (float(x) - min(xs)) * scale, pad + (float(y) - min(ys)) * scale) for x, y, *_ in stroke
        ]
        if len(line) == 1:
            line = line * 2
        draw.line(line, fill=(20, 20, 90, 255), width=3, joint="curve")
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
