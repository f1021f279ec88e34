"""The Perdure SDK: the only public names are the ones listed in ``__all__``."""

__all__: list[str] = []
