"""The pack products the simulator ships, by the variant names plans use: the pack definition
files in sim/packs/ (``bus-700``, ``car-400``, ``car-800``), as ``PackSpec``s.

``PRESETS`` reads the files on first use, not at import: adding a family is adding a file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sim.pack.spec import PackSpec


class _Shipped(Mapping[str, PackSpec]):
    """name -> PackSpec of every shipped pack file (sim.pack.catalogue.shipped)."""

    def _specs(self) -> dict[str, PackSpec]:
        from sim.pack.catalogue import shipped

        return {name: d.spec for name, d in shipped().items()}

    def __getitem__(self, name: str) -> PackSpec:
        return self._specs()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs())

    def __len__(self) -> int:
        return len(self._specs())


PRESETS: Mapping[str, PackSpec] = _Shipped()
