"""Entry point so that `uv run apps/infer` works from the workspace root."""

from gpt_infer_app.main import main

if __name__ == "__main__":
    raise SystemExit(main())
