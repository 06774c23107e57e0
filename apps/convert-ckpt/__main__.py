"""Entry point so that `uv run apps/convert-ckpt` works from the workspace root."""

from gpt_convert_ckpt_app.main import main

if __name__ == "__main__":
    raise SystemExit(main())
