"""List public parameters and return values of robustalign that carry no type annotation.

Public means: named in ``__all__`` of a public module (functions, and public methods of public classes), defined
in robustalign. ``python tools/annotations.py [path-prefix ...]`` prints one line per missing annotation and the
count; the test suite requires the count to be zero.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys


def missing_annotations() -> list[tuple[str, str, str]]:
    """``(source file, qualified name, parameter or 'return')`` for every missing annotation."""
    import robustalign

    names = ["robustalign"] + [m.name for m in pkgutil.walk_packages(robustalign.__path__, "robustalign.")
                               if not any(part.startswith("_") for part in m.name.split(".")[1:])]
    seen: set[tuple[str, str]] = set()
    out = []
    for name in names:
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr, None)
            if inspect.isfunction(obj):
                fns = [obj]
            elif inspect.isclass(obj):
                fns = [v for k, v in vars(obj).items() if inspect.isfunction(v)
                       and (not k.startswith("_") or k == "__init__")]
            else:
                continue
            for f in fns:
                if not f.__module__.startswith("robustalign"):
                    continue
                key = (f.__module__, f.__qualname__)
                if key in seen:
                    continue
                seen.add(key)
                file = inspect.getsourcefile(f) or f.__module__
                file = file[file.rfind("robustalign/"):]
                sig = inspect.signature(f)
                for p in sig.parameters.values():
                    if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty:
                        out.append((file, f.__qualname__, p.name))
                if sig.return_annotation is inspect.Signature.empty and f.__name__ != "__init__":
                    out.append((file, f.__qualname__, "return"))
    return sorted(out)


if __name__ == "__main__":
    prefixes = sys.argv[1:]
    rows = [r for r in missing_annotations() if not prefixes or any(r[0].startswith(p) for p in prefixes)]
    for file, qual, what in rows:
        print(f"{file}: {qual}: {what}")
    print(f"{len(rows)} missing annotations")
