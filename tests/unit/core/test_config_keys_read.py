"""Every configuration key is read by some code: a key nothing reads documents a behaviour
that does not exist (it was ``attribution.max_frames``, documented as cropping).

A read is matched by its full key path, not its leaf name: ``train.epochs`` being read says
nothing about ``eval.gender.epochs``. The code passes section objects around (a function takes
``cfg: GenderConfig`` and reads ``cfg.epochs``), so the check infers, per function, which
configuration section each expression holds: from parameter and attribute annotations, from
assignments (``g = cfg.eval.gender``), loops over a tuple of records (``mask.conditions``),
and return annotations, then resolves ``<section>.leaf`` to the section's path. A read through
an object typed only by its class (``rc: ResourceConfig``) counts for every path where that
class sits, as the code may receive any of them.
"""

from __future__ import annotations

import ast
import dataclasses
import textwrap
import typing
from collections import defaultdict
from pathlib import Path

from voxray import config
from voxray.config import VoxrayConfig

CONFIG = Path(config.__file__).resolve().parent
ROOT = CONFIG.parents[1]
#: where configuration is read: the library, the benchmarks and the job entrypoints. The config
#: package only declares and checks keys: of it, only the config classes' own methods count (a
#: property such as ``MaskCondition.name`` reads its fields), not ``__post_init__`` checks.
SOURCES = [p for d in ("voxray", "bench", "ray_jobs") for p in sorted((ROOT / d).rglob("*.py"))]

#: an inferred type: a set of tags, each a config section path ("" the root, "eval.gender",
#: "mask.conditions[]" one record of a tuple of records), "iter:<tag>" a sequence of them, or
#: "cls:<Name>" an instance of another class of the sources.
Tags = frozenset


def _is_record_tuple(kind: object) -> type | None:
    """The dataclass ``X`` of a ``tuple[X, ...]`` field (a list of records), else None."""
    if typing.get_origin(kind) is tuple:
        return next((t for t in typing.get_args(kind) if dataclasses.is_dataclass(t)), None)
    return None


def _walk_config(cls: type, prefix: str, sections: dict[str, type], keys: list[str]) -> None:
    sections[prefix] = cls
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        key = f"{prefix}.{f.name}" if prefix else f.name
        record = _is_record_tuple(kind)
        nested = [t for t in (kind, *typing.get_args(kind)) if dataclasses.is_dataclass(t)]
        if record is not None:  # the tuple itself is a key, and so is each record field
            keys.append(key)
            _walk_config(record, key + "[]", sections, keys)
        elif nested:
            _walk_config(nested[0], key, sections, keys)
        else:
            keys.append(key)


def config_tree(root: type = VoxrayConfig) -> tuple[dict[str, type], list[str]]:
    """(section path -> dataclass, every leaf key path) of a configuration dataclass."""
    sections: dict[str, type] = {}
    keys: list[str] = []
    _walk_config(root, "", sections, keys)
    return sections, keys


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Program:
    """Which key paths a set of modules reads, by a flow-insensitive inference of the config
    sections each local name, attribute and call holds."""

    def __init__(self, modules: list[tuple[str, ast.Module]], root: type = VoxrayConfig) -> None:
        self.sections, keys = config_tree(root)
        self.keys = set(keys)
        self.class_paths: dict[str, set[str]] = defaultdict(set)  # config class name -> paths
        for path, cls in self.sections.items():
            for base in cls.__mro__:
                if dataclasses.is_dataclass(base):
                    self.class_paths[base.__name__].add(path)
        self.modules = modules
        self.classes: dict[str, ast.ClassDef] = {}
        self.returns: dict[str, list[ast.expr]] = defaultdict(list)  # function -> annotations
        for _, tree in modules:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.classes.setdefault(node.name, node)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
                    self.returns[node.name].append(node.returns)
        self.attrs: dict[str, dict[str, Tags]] = defaultdict(dict)  # class -> attr -> tags
        self.read: set[str] = set()
        self._lambda_bodies: dict[ast.Lambda, list[ast.stmt]] = {}
        self._nodes: dict[int, tuple[list, list, list]] = {}
        self.lambdas: dict[ast.Lambda, dict[str, Tags]] = {}  # lambda -> its parameters' tags

    # ---------------------------------------------------------------- annotations
    def annotation(self, node: ast.expr | None) -> Tags:
        """The tags an annotation names: ``GenderConfig``, ``X | None``, ``list[X]``, "X"."""
        if node is None:
            return Tags()
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                return self.annotation(ast.parse(node.value, mode="eval").body)
            except SyntaxError:
                return Tags()
        if isinstance(node, ast.BinOp):  # X | None
            return self.annotation(node.left) | self.annotation(node.right)
        if isinstance(node, ast.Subscript):
            outer = node.value.attr if isinstance(node.value, ast.Attribute) else None
            outer = outer or (node.value.id if isinstance(node.value, ast.Name) else "")
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            inner = Tags().union(*(self.annotation(a) for a in args))
            if outer in ("Optional", "Union", "ClassVar", "Final"):
                return inner
            if outer in ("list", "tuple", "Sequence", "Iterable", "Iterator", "List", "Tuple"):
                return Tags(f"iter:{t}" for t in inner)
            return Tags()
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if name in self.class_paths:
            return Tags(self.class_paths[name])
        if name in self.classes:
            return Tags({f"cls:{name}"})
        return Tags()

    def class_attr(self, cls: str, name: str, seen: frozenset[str] = frozenset()) -> Tags:
        """An attribute's tags on a class of the sources or, inherited, on one of its bases."""
        if name in self.attrs[cls] or cls not in self.classes or cls in seen:
            return self.attrs[cls].get(name, Tags())
        bases = [getattr(b, "id", getattr(b, "attr", "")) for b in self.classes[cls].bases]
        return Tags().union(*(self.class_attr(b, name, seen | {cls}) for b in bases))

    # ---------------------------------------------------------------- expressions
    def member(self, tags: Tags, name: str, mark: bool) -> Tags:
        """The tags of ``<tags>.name``; marks the key paths it reads when ``mark``."""
        out: set[str] = set()
        for tag in tags:
            if tag.startswith("cls:"):
                out |= self.class_attr(tag[4:], name)
            elif not tag.startswith("iter:") and tag in self.sections:
                path = _join(tag, name)
                if path in self.keys and mark:
                    self.read.add(path)
                if path + "[]" in self.sections:
                    out.add(f"iter:{path}[]")
                elif path in self.sections:
                    out.add(path)
        return Tags(out)

    def expr(self, node: ast.expr, env: dict[str, Tags], mark: bool = False) -> Tags:
        if isinstance(node, ast.Name):
            return env.get(node.id, Tags())
        if isinstance(node, ast.Attribute):
            return self.member(self.expr(node.value, env), node.attr, mark)
        if isinstance(node, ast.Subscript):  # one record of a sequence
            return Tags(t[5:] for t in self.expr(node.value, env) if t.startswith("iter:"))
        if isinstance(node, ast.IfExp):
            return self.expr(node.body, env) | self.expr(node.orelse, env)
        if isinstance(node, ast.BoolOp):
            return Tags().union(*(self.expr(v, env) for v in node.values))
        if isinstance(node, ast.NamedExpr):
            return self.expr(node.value, env)
        if isinstance(node, ast.Call):
            return self.call(node, env)
        return Tags()

    def call(self, node: ast.Call, env: dict[str, Tags]) -> Tags:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name in ("replace", "dataclasses.replace") and node.args:  # same section, new values
            return self.expr(node.args[0], env)
        if name in self.class_paths or name in self.classes:  # a constructor
            return self.annotation(ast.Name(name))
        if isinstance(func, ast.Attribute):  # a method: its class's return annotation
            owner = self.expr(func.value, env)
            methods = [self.classes[t[4:]] for t in owner if t.startswith("cls:")]
            return Tags().union(
                *(
                    self.annotation(d.returns)
                    for c in methods
                    for d in c.body
                    if isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef)) and d.name == name
                )
            )
        return Tags().union(*(self.annotation(r) for r in self.returns.get(name, [])))

    # ---------------------------------------------------------------- scopes
    def bind(self, target: ast.expr, tags: Tags, env: dict[str, Tags], owner: str | None) -> None:
        if not tags:
            return
        if isinstance(target, ast.Name):
            env[target.id] = env.get(target.id, Tags()) | tags
        elif (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and owner
        ):
            known = self.attrs[owner].get(target.attr, Tags())
            self.attrs[owner][target.attr] = known | tags

    def assign(
        self, target: ast.expr, value: ast.expr, env: dict[str, Tags], owner: str | None
    ) -> None:
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):  # a, b = x, y
            for t, v in zip(target.elts, value.elts, strict=False):
                self.assign(t, v, env, owner)
        else:
            self.bind(target, self.expr(value, env), env, owner)

    def callables(self, annotation: ast.expr, value: ast.expr) -> None:
        """Types the parameters of the lambdas in ``value`` from the ``Callable[[A, ...], R]``
        in its annotation (a table of ``(name, function, enabled(cfg))``)."""
        signatures = [
            [self.annotation(a) for a in n.slice.elts[0].elts]
            for n in ast.walk(annotation)
            if isinstance(n, ast.Subscript)
            and getattr(n.value, "id", getattr(n.value, "attr", "")) == "Callable"
            and isinstance(n.slice, ast.Tuple)
            and isinstance(n.slice.elts[0], ast.List)
        ]
        for lam in ast.walk(value):
            if isinstance(lam, ast.Lambda):
                for sig in signatures:
                    if len(sig) == len(lam.args.args):
                        self.lambdas[lam] = {
                            a.arg: t for a, t in zip(lam.args.args, sig, strict=True)
                        }

    def scope(self, body: list[ast.AST], env: dict[str, Tags], owner: str | None) -> None:
        """Infer the names of one function (or module) body, then mark its reads; nested
        functions and classes get a copy of the enclosing names."""
        binders, reads, nested = self.nodes(body)
        for _ in range(3):  # flow-insensitive: a later assignment may type an earlier read
            before = dict(env)
            for n in binders:
                if isinstance(n, ast.Assign):
                    for t in n.targets:
                        self.assign(t, n.value, env, owner)
                elif isinstance(n, ast.AnnAssign):
                    if n.value is not None:
                        self.callables(n.annotation, n.value)
                    tags = self.annotation(n.annotation)
                    if not tags and n.value is not None:
                        tags = self.expr(n.value, env)
                    self.bind(n.target, tags, env, owner)
                elif isinstance(n, ast.NamedExpr):
                    self.bind(n.target, self.expr(n.value, env), env, owner)
                elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
                    items = self.expr(n.iter, env)
                    self.bind(
                        n.target, Tags(t[5:] for t in items if t.startswith("iter:")), env, owner
                    )
                else:  # a with item
                    self.bind(n.optional_vars, self.expr(n.context_expr, env), env, owner)
            if env == before:
                break
        for n in reads:
            self.expr(n, env, mark=True)
        for n in nested:
            if isinstance(n, ast.ClassDef):
                self.klass(n, env)
            else:
                self.function(n, env, owner)

    def nodes(self, body: list[ast.AST]) -> tuple[list, list, list]:
        """(binding nodes, attribute reads, nested functions and classes) of one scope, cached:
        every pass of ``run`` walks the same scopes."""
        key = id(body)
        if key not in self._nodes:
            every = [n for stmt in body for n in _walk_scope(stmt)]
            binders = [n for n in every if isinstance(n, _BINDERS)]
            binders = [n for n in binders if not isinstance(n, ast.withitem) or n.optional_vars]
            reads = [n for n in every if isinstance(n, ast.Attribute)]
            nested = [n for n in every if isinstance(n, _SCOPES)]
            self._nodes[key] = (binders, reads, nested)
        return self._nodes[key]

    def function(self, node: ast.AST, outer: dict[str, Tags], owner: str | None) -> None:
        env = dict(outer)
        args = node.args
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        for a in params:
            env[a.arg] = self.annotation(a.annotation)
        env.update(self.lambdas.get(node, {}))
        if owner and params and params[0].arg in ("self", "cls"):
            env[params[0].arg] = self.annotation(ast.Name(owner))
        if isinstance(node, ast.Lambda):
            self.scope(self._lambda_bodies.setdefault(node, [ast.Expr(node.body)]), env, owner)
        else:
            self.scope(node.body, env, owner)

    def klass(self, node: ast.ClassDef, outer: dict[str, Tags]) -> None:
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                tags = self.annotation(stmt.annotation)
                if tags:
                    self.attrs[node.name][stmt.target.id] = tags
            elif isinstance(stmt, ast.FunctionDef) and any(
                getattr(d, "id", "") in ("property", "cached_property") for d in stmt.decorator_list
            ):
                self.attrs[node.name][stmt.name] = self.annotation(stmt.returns)
            elif isinstance(stmt, ast.Assign) and any(
                getattr(t, "id", "") == "map_params" for t in stmt.targets
            ):  # attribution parameters, read by name from the AttributionConfig
                for const in ast.walk(stmt.value):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        self.member(Tags(self.class_paths["AttributionConfig"]), const.value, True)
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name in self.class_paths and stmt.name == "__post_init__":
                    continue  # a check of the values, not a use of them
                self.function(stmt, outer, node.name)

    def run(self) -> set[str]:
        while True:  # attribute types found in one class feed reads in another
            before = {c: dict(a) for c, a in self.attrs.items()}, set(self.read)
            for path, tree in self.modules:
                if CONFIG in path.parents:  # only the config classes' own methods
                    for c in tree.body:
                        if isinstance(c, ast.ClassDef) and c.name in self.class_paths:
                            self.klass(c, {})
                else:
                    self.scope(tree.body, {}, None)
            if before == ({c: dict(a) for c, a in self.attrs.items()}, self.read):
                return self.read


_BINDERS = (
    ast.Assign,
    ast.AnnAssign,
    ast.NamedExpr,
    ast.For,
    ast.AsyncFor,
    ast.comprehension,
    ast.withitem,
)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _walk_scope(node: ast.AST):
    """The nodes of one scope: nested functions, lambdas and classes are yielded but not
    entered (``scope`` analyses them with their own names)."""
    yield node
    if isinstance(node, _SCOPES):
        for d in getattr(node, "decorator_list", []):
            yield from _walk_scope(d)
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_scope(child)


def keys_read(sources: dict[Path, str], root: type = VoxrayConfig) -> tuple[set[str], set[str]]:
    """(every key path of ``root``, the paths the sources read)."""
    modules = [(p, ast.parse(text, str(p))) for p, text in sources.items()]
    program = _Program(modules, root)
    return program.keys, program.run()


def test_every_config_key_is_read_by_some_code() -> None:
    keys, read = keys_read({p: p.read_text() for p in SOURCES})
    unread = sorted(keys - read)
    assert not unread, f"config keys no code reads (remove them or wire them up): {unread}"


# ------------------------------------------------------------------------ the check itself


@dataclasses.dataclass(frozen=True)
class _Gender:
    epochs: int = 5
    lr: float = 1e-3


@dataclasses.dataclass(frozen=True)
class _Eval:
    gender: _Gender = dataclasses.field(default_factory=_Gender)


@dataclasses.dataclass(frozen=True)
class _Cond:
    rule: str = "product"
    threshold: float = 0.1


@dataclasses.dataclass(frozen=True)
class _Train:
    epochs: int = 10
    conditions: tuple[_Cond, ...] = ()


@dataclasses.dataclass(frozen=True)
class _Root:
    train: _Train = dataclasses.field(default_factory=_Train)
    eval: _Eval = dataclasses.field(default_factory=_Eval)


def _read_by(code: str) -> set[str]:
    return keys_read({Path("m.py"): textwrap.dedent(code)}, _Root)[1]


def test_the_check_tells_a_section_path_from_a_leaf_name_read_elsewhere() -> None:
    """``train.epochs`` is read and ``eval.gender.epochs``, with the same leaf name, is not:
    the leaf-name check this replaces passed it."""
    read = _read_by(
        """
        def fit(cfg: _Root) -> int:
            return cfg.train.epochs + cfg.eval.gender.lr
        """
    )
    assert read == {"train.epochs", "eval.gender.lr"}
    keys, _ = keys_read({}, _Root)
    assert "eval.gender.epochs" in keys - read


def test_the_check_follows_sections_passed_around() -> None:
    """A section bound to a name, passed as a typed parameter, held on ``self`` or looped
    over resolves to its own path."""
    read = _read_by(
        """
        def gender(g: _Gender) -> float:
            return g.lr

        class Trainer:
            def __init__(self, cfg: _Root) -> None:
                self.train = cfg.train

            def run(self) -> None:
                t = self.train
                for c in t.conditions:
                    print(c.threshold)

        def top(cfg: _Root) -> None:
            ev = cfg.eval
            gender(ev.gender)
        """
    )
    assert read == {"eval.gender.lr", "train.conditions", "train.conditions[].threshold"}


def test_the_check_finds_a_planted_unread_key_in_the_real_config() -> None:
    """The real code through the check, with the gender analysis made to train for
    ``cfg.train.epochs`` instead of its own ``gc.epochs``: ``eval.gender.epochs`` is then
    unread although its leaf name ``epochs`` still is (the leaf-name check passed this)."""
    sources = {p: p.read_text() for p in SOURCES}
    analyses = ROOT / "voxray" / "pipeline" / "analyses" / "gender.py"
    assert "gc.epochs" in sources[analyses]
    sources[analyses] = sources[analyses].replace("gc.epochs", "cfg.train.epochs")
    keys, read = keys_read(sources)
    assert {"train.epochs", "eval.gender.lr"} <= read
    assert keys - read == {"eval.gender.epochs"}
