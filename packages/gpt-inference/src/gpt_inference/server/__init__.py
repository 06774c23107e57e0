"""The text-generation server: the original's `PUT /api` and `POST /completions`, and a page."""
