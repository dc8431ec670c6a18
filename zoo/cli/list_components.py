"""`zoo-list`: every registered component, by kind."""
from __future__ import annotations

from zoo.registry import ALL_REGISTRIES
from zoo.components import load_components


def main() -> None:
    load_components()
    for kind, registry in ALL_REGISTRIES.items():
        print(f"{kind:<11} {', '.join(registry.names()) or '-'}")


if __name__ == "__main__":
    main()
