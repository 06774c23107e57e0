"""Entry point so that `uv run apps/preprocess-data` works from the workspace root."""

from gpt_preprocess_data_app.main import main

if __name__ == "__main__":
    raise SystemExit(main())
