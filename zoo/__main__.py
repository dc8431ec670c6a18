"""`python -m zoo` lists the registered components."""
from zoo.cli.list_components import main

main()
