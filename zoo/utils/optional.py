"""An optional package a command needs and does not find: raised with what to install, reported by the commands in
one line (exit status 2), unlike an import error of zoo's own, which keeps its traceback."""


class MissingPackage(ModuleNotFoundError):
    pass
