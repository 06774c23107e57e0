"""Entry point so that `uv run apps/pretrain` works from the workspace root."""

from gpt_pretrain_app.main import main

if __name__ == "__main__":
    raise SystemExit(main())
