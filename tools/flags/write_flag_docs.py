"""Write docs/flags.md from the flag declarations (the same table as `pretrain --flag-status`)."""

from __future__ import annotations

from pathlib import Path

from gpt_pretrain_app.flag_status import status_table

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    target = ROOT / "docs" / "flags.md"
    target.write_text(status_table(markdown=True))
    print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
