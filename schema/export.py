"""`python -m schema.export [PATH]`: write the schema's SDL (default schema/hub.graphql)."""

import sys
from pathlib import Path

from schema.app import build_schema

DEFAULT_PATH = Path(__file__).with_name("hub.graphql")


def sdl() -> str:
    return build_schema(False).as_str() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    path.write_text(sdl(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
