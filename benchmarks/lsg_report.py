"""bench_lsg.py's results: one `Row` per implementation, case and length; ratios over lsg-converter's
row; the targets; the table, CSV, Markdown and PNG (the harness's writers where the layout is theirs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import harness
from lsg_peer import PEER

TARGETS = {"infer_fp32": {"speed": 1.5}, "train_step_fp32": {"speed": 1.3, "memory": 0.8}}  # ours / lsg-converter
COLOURS = {"ours": "tab:blue", PEER: "tab:orange", "longformer": "tab:green", "bigbird": "tab:red"}
TABLE_COLUMNS = (  # (header, key of Row.values)
    ("case", "case"), ("T", "seq_len"), ("impl", "impl"), ("rounds", "rounds"), ("s/call", "s_per_call"),
    ("tok/s", "tokens_per_s"), ("MFU%", "mfu_pct"), ("MiB", "peak_mib"), ("speed x", "speed_vs_lsg_converter"),
    ("mem x", "memory_vs_lsg_converter"), ("target", "target"), ("note", "note"),
)
fmt = harness.format_value  # "" for None or NaN (bart_generate: FLOPs not counted)


@dataclass
class Row(harness.ImplRow):
    digest: list | None = None

    peer_column = "lsg_converter"

    def target(self) -> str:
        """'met' / 'MISSED' against the case's targets (ours rows only)."""
        goals = TARGETS.get(self.case) if self.impl == "ours" else None
        if not goals:
            return ""
        parts = []
        if "speed" in goals:
            ok = self.speed_ratio is not None and self.speed_ratio >= goals["speed"]
            parts.append(f"speed>={goals['speed']}x " + ("met" if ok else "MISSED" if self.speed_ratio else "n/a"))
        if "memory" in goals:
            ok = self.memory_ratio is not None and self.memory_ratio <= goals["memory"]
            parts.append(f"mem<={goals['memory']}x " + ("met" if ok else "MISSED" if self.memory_ratio else "n/a"))
        return ", ".join(parts)


def fill_ratios(rows: list[Row]) -> None:
    """Ratios of every row over the lsg-converter row of its case and length."""
    harness.fill_ratios(rows, PEER)


def format_table(rows: list[Row]) -> str:
    return harness.format_columns([row.values() for row in rows], TABLE_COLUMNS)


def target_summary(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        if row.target():
            lines.append(f"- {row.case} T={row.seq_len}: ours/lsg-converter speed {fmt(row.speed_ratio, '{:.2f}x')}"
                         f" memory {fmt(row.memory_ratio, '{:.2f}x') or 'not measured'}: {row.target()}")
    return lines


def write_results(rows: list[Row], stem: str, out_dir: Path, command: str, context: dict) -> list[Path]:
    """<stem>.csv, <stem>.md (command, context, targets, table) and <stem>.png; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "png"))
    harness.write_csv([row.values() for row in rows], csv_path)
    title = f"{stem}: ours vs {PEER} (with Longformer and BigBird)"
    lines = harness.markdown_head(title, command, context)
    lines += ["", "Columns: s/call median seconds per call; tok/s input tokens per second; MFU% counted useful "
              "FLOPs / time / the measured fp32 matmul peak; MiB peak memory growth of one call; speed x and "
              f"mem x the row's tokens/s and peak memory over {PEER}'s (speed > 1: faster; memory < 1: smaller); "
              "target: ours against the goals below.", "",
              "Targets (ours / lsg-converter): infer_fp32 speed >= 1.5x; train_step_fp32 speed >= 1.3x at "
              "memory <= 0.8x.", ""]
    lines += target_summary(rows) + ["", "```", format_table(rows), "```", ""]
    md_path.write_text("\n".join(lines))
    plot_rows(rows, png_path, title)
    return [csv_path, md_path, png_path]


def plot_rows(rows: list[Row], path: Path, title: str) -> None:
    """2 x 2 panels: tokens/s, MFU, peak memory (implementations side by side per case and
    length), and ours / lsg-converter with the targets marked."""
    harness.plot_impl_rows(rows, path, title, COLOURS, "ours", PEER, TARGETS)
