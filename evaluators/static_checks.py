"""Static checks on a candidate's AST, before any of it runs.

Each rule is a function that walks the tree and yields findings naming the rule and the line.
A syntax error or a missing ModelNew is a compile_error; a finding of severity "reject" makes
the candidate `rejected` without running it. The runtime guards (evaluators/guards.py) and the
sandbox stand behind these: a check here is the clear, early answer, not the only one.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from evaluators.guards import FORBIDDEN_ROOTS, module_allowed
from evaluators.loading import SourceProblem, parse
from evaluators.protocol import Finding

Rule = Callable[[ast.Module, "CheckContext"], Iterator[Finding]]
RULES: list[Rule] = []

# APIs that are never a Triton kernel's business, by the rule they break
FORBIDDEN_APIS = {
    "torch.utils.cpp_extension": "cpp-extension",
    "torch.ops": "torch-internals",
    "torch.library": "torch-internals",
    "torch.compile": "torch-compile",
    "torch.jit": "torch-internals",
    "torch.multiprocessing": "forbidden-module",
    "torch.distributed": "forbidden-module",
    "torch.hub": "forbidden-module",
    "torch.load": "file-access",
    "torch.save": "file-access",
    "torch.overrides": "torch-internals",
    "triton.testing": "triton-testing",
    "triton.runtime.build": "triton-internals",
    "triton.compiler": "triton-internals",
    "triton.tools": "triton-internals",
}
# modules that must not be reached through another's attributes either (`triton.runtime.autotuner.time`)
REACH_FORBIDDEN = FORBIDDEN_ROOTS | {"inspect", "io", "pathlib", "time", "tempfile", "glob", "json", "struct"}
DYNAMIC_CALLS = {"__import__", "eval", "exec", "compile", "globals", "vars", "locals", "breakpoint", "input"}
# attributes that lead from an object to interpreter internals: frames, globals, code, every class
ESCAPE_ATTRIBUTES = {
    "__globals__", "__subclasses__", "__code__", "__builtins__", "__closure__", "__mro__", "__bases__",
    "__base__", "__loader__", "__spec__", "__import__", "__reduce__", "__reduce_ex__", "__getattribute__",
    "__setattr__", "__delattr__", "__wrapped__", "__self__", "__func__", "__defaults__", "__kwdefaults__",
    "__dict__", "f_back", "f_locals", "f_globals", "f_code", "f_builtins", "tb_frame", "tb_next", "gi_frame",
    "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "co_consts",
}
SUBCLASS_HOOKS = {"__torch_function__", "__torch_dispatch__"}
# strict mode: what forward may still call in torch (allocation, layout, metadata; see docs/threat-model.md)
STRICT_ALLOWED = {
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "arange", "new_empty", "new_zeros", "new_ones", "new_full", "size", "shape", "stride", "dim", "ndim", "numel",
    "dtype", "device", "element_size", "data_ptr", "is_contiguous", "contiguous", "view", "reshape", "permute",
    "transpose", "t", "unsqueeze", "squeeze", "expand", "expand_as", "flatten", "unflatten", "narrow", "as_strided",
    "view_as", "detach", "clone", "to", "float", "half", "bfloat16", "is_cuda", "get_device", "cdiv", "Size",
    "no_grad", "is_floating_point", "finfo", "iinfo", "float32", "float16", "int32", "int64", "bool",
    "chunk", "split", "unbind", "movedim", "item", "tolist", "__len__", "current_device", "device_count",
    "get_device_capability", "get_device_properties", "is_available", "current_stream", "next_power_of_2",
}
STRICT_EXEMPT_FUNCTIONS = {"__init__", "get_inputs", "get_init_inputs"}  # construction and copied task helpers
# tensor methods that compute: strict mode rejects them even when the receiver's type is unknown
COMPUTE_METHODS = {
    "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "exp", "log", "sqrt", "rsqrt", "relu",
    "sigmoid", "tanh", "softmax", "log_softmax", "matmul", "mm", "bmm", "addmm", "baddbmm", "mul", "add", "sub",
    "div", "pow", "abs", "neg", "clamp", "clamp_", "cumsum", "norm", "var", "std", "mul_", "add_", "sub_", "div_",
    "exp_", "relu_", "sort", "topk", "where", "masked_fill", "gelu", "silu", "erf", "sin", "cos", "maximum",
    "minimum", "logsumexp", "einsum", "conv2d", "linear", "layer_norm", "group_norm", "copy_",
}


@dataclass
class CheckContext:
    strict: bool
    source_lines: list[str]
    aliases: dict[str, str] = field(default_factory=dict)  # local name -> the module path it stands for

    def resolve(self, node: ast.AST) -> str | None:
        return resolve_name(node, self.aliases)

    def imported(self, path: str | None) -> bool:
        """Is this a path into an imported module (`torch.cuda.Event`), not a local object?"""
        return path is not None and path.partition(".")[0] in IMPORT_ROOTS


IMPORT_ROOTS = {name.partition(".")[0] for name in ("torch", "triton", "math", "typing", "functools", "itertools",
                                                     "dataclasses", "enum", "numbers", "collections", "operator")}
IMPORT_ROOTS |= FORBIDDEN_ROOTS | {"time", "inspect", "io", "pathlib", "builtins", "random", "numpy"}


@dataclass
class StaticReport:
    compile_error: SourceProblem | None
    findings: list[Finding]

    @property
    def rejected(self) -> bool:
        return any(f.severity == "reject" for f in self.findings)


def rule(function: Rule) -> Rule:
    RULES.append(function)
    return function


def check_candidate(source: str, strict: bool = False) -> StaticReport:
    try:
        tree = parse(source, "candidate.py")
    except SourceProblem as problem:
        return StaticReport(problem, [])
    model_new = _find_class(tree, "ModelNew")
    if model_new is None:
        return StaticReport(
            SourceProblem("no class ModelNew is defined; the candidate must define class ModelNew(nn.Module)"), []
        )
    context = CheckContext(strict=strict, source_lines=source.splitlines(), aliases=_aliases(tree))
    findings = [finding for check in RULES for finding in check(tree, context)]
    findings.sort(key=lambda f: (f.severity != "reject", f.line or 0))
    return StaticReport(None, findings)


def _find_class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


def _dotted(node: ast.AST) -> str | None:
    """`triton.jit` for Attribute(Name('triton'), 'jit'); None when not a plain dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> full module or object path, from the module's imports."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Import aliases plus plain names bound to module paths (`E = torch.cuda.Event`), anywhere."""
    aliases = _import_aliases(tree)
    for _ in range(3):  # chains of aliases settle in a few passes
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                path = resolve_name(node.value, aliases)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if path and path.partition(".")[0] in IMPORT_ROOTS:
                    for target in targets:
                        if isinstance(target, ast.Name):
                            aliases[target.id] = path
    return aliases


def resolve_name(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The full dotted path a name refers to, through import aliases (`tl.load` -> `triton.language.load`)."""
    dotted = _dotted(node)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    full = aliases.get(head, head)
    return f"{full}.{rest}" if rest else full


def _decorator_paths(node: ast.FunctionDef, aliases: dict[str, str]) -> list[str]:
    paths = []
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        path = resolve_name(target, aliases)
        if path:
            paths.append(path)
    return paths


def triton_kernels(tree: ast.Module) -> list[ast.FunctionDef]:
    aliases = _import_aliases(tree)
    kernels = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            path in ("triton.jit", "triton.runtime.jit.jit") for path in _decorator_paths(node, aliases)
        ):
            kernels.append(node)
    return kernels


def _reject(rule_name: str, message: str, node: ast.AST | None = None) -> Finding:
    return Finding(rule=rule_name, message=message, line=getattr(node, "lineno", None))


@rule
def has_triton_kernel(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    if not triton_kernels(tree):
        yield Finding(
            rule="no-triton-kernel",
            message="the candidate defines no @triton.jit kernel; ModelNew must compute with Triton kernels",
        )


@rule
def no_reference_inheritance(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    model_new = _find_class(tree, "ModelNew")
    assert model_new is not None
    for base in model_new.bases:
        if _dotted(base) in ("Model", "reference.Model"):
            yield _reject("inherits-reference",
                          "ModelNew inherits from the reference Model; it must implement forward itself", model_new)
    for node in ast.walk(model_new):
        if isinstance(node, ast.Name) and node.id == "Model":
            yield _reject("calls-reference", "ModelNew uses the reference Model; forward must compute itself", node)


@rule
def allowed_imports(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or "."] if not node.level else ["." * node.level + (node.module or "")]
        else:
            continue
        for name in names:
            if not module_allowed(name):
                yield _reject("forbidden-import", f"imports {name!r}; a candidate may import only torch, torch.nn, "
                              "triton, triton.language and a few pure standard modules (math, functools, ...)", node)


@rule
def forbidden_paths(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    """Module internals and dangerous APIs, however they are reached (`torch.serialization.os.system`)."""
    seen: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Attribute, ast.Name)) or id(node) in seen:
            continue
        path = context.resolve(node)
        if not context.imported(path):
            continue  # `torch.sys.modules[...].socket`: its inner chain `torch.sys.modules` is visited next
        seen.update(id(inner) for inner in ast.walk(node))  # one finding per chain
        assert path is not None
        parts = path.split(".")
        api = next((api for api in FORBIDDEN_APIS if path == api or path.startswith(api + ".")), None)
        if parts[0] in FORBIDDEN_ROOTS or any(part in REACH_FORBIDDEN for part in parts[1:]):
            yield _reject("forbidden-module", f"reaches {path}: process, file, thread and interpreter "
                          "modules are out of a candidate's reach", node)
        elif api is not None:
            yield _reject(FORBIDDEN_APIS[api], f"uses {path}, which no Triton kernel needs", node)
        elif any(part.startswith("_") and not (part.startswith("__") and part.endswith("__")) for part in parts):
            yield _reject("private-internals", f"uses {path}, a private internal of torch or Triton", node)


@rule
def dynamic_code(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "__builtins__":
            yield _reject("dynamic-code", "touches __builtins__", node)
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        name = node.func.id
        if name in DYNAMIC_CALLS and name not in context.aliases:
            yield _reject("dynamic-code", f"calls {name}(): code and names must be written out, not computed", node)
        elif name == "open":
            yield _reject("file-access", "opens a file; a candidate reads and writes no files", node)
        elif name in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) >= 2:
            target, attribute = node.args[0], node.args[1]
            literal = isinstance(attribute, ast.Constant) and isinstance(attribute.value, str)
            if literal and attribute.value in ESCAPE_ATTRIBUTES:
                yield _reject("escape-attribute", f"{name}(..., {attribute.value!r}) reaches interpreter internals", node)
            elif not literal and not _on_self(target):
                yield _reject("dynamic-code", f"{name}() with a computed name: attributes must be written out", node)
            elif name in ("setattr", "delattr") and context.imported(context.resolve(target)):
                yield _reject("monkey-patch", f"{name}() on {context.resolve(target)}: torch, Triton and the "
                              "harness must stay as they are", node)


def _on_self(node: ast.AST) -> bool:
    dotted = _dotted(node)
    return dotted is not None and dotted.split(".")[0] == "self"


@rule
def escape_attributes(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ESCAPE_ATTRIBUTES:
            yield _reject("escape-attribute", f".{node.attr} leads to interpreter internals (frames, globals, "
                          "code, classes); a kernel needs none", node)


@rule
def monkey_patching(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        else:
            continue
        for target in targets:
            for element in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                base = element.value if isinstance(element, (ast.Attribute, ast.Subscript)) else None
                path = context.resolve(element if isinstance(element, ast.Attribute) else base) if base else None
                if path and context.imported(path):
                    yield _reject("monkey-patch", f"assigns {path}: torch, Triton, timing and the harness must "
                                  "stay as they are", element)


@rule
def tensor_subclasses(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        if any(context.resolve(base) in ("torch.Tensor", "torch.nn.Parameter") for base in node.bases):
            yield _reject("tensor-subclass", f"class {node.name} subclasses torch.Tensor; outputs must be plain "
                          "tensors computed by a kernel", node)
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name in SUBCLASS_HOOKS:
                yield _reject("tensor-subclass", f"{node.name}.{item.name} intercepts torch calls", item)


@rule
def fallback_to_torch(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    """A try/except that runs torch (or the reference) when the kernel fails hides a broken kernel."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        launches = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Subscript) for n in ast.walk(node))
        for handler in node.handlers:
            body = ast.Module(body=handler.body, type_ignores=[])
            calls_torch = any(_computes(n, context) for n in ast.walk(body))
            swallows = all(isinstance(s, (ast.Pass, ast.Continue, ast.Return)) for s in handler.body)
            if calls_torch or (launches and swallows):
                yield _reject("try-fallback", "a try/except around the kernel falls back to other code when it "
                              "fails; let a failing kernel fail", handler)


def _computes(node: ast.AST, context: CheckContext) -> bool:
    """A call that computes with torch (or the reference), as far as the source shows."""
    if isinstance(node, ast.Name) and node.id == "Model":
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        return True
    if not isinstance(node, ast.Call):
        return False
    dotted = _dotted(node.func)
    if dotted is not None and dotted.partition(".")[0] in context.aliases:
        # a module's function (torch.exp, F.relu; math.prod and triton.cdiv are fine)
        path = context.resolve(node.func) or ""
        return path.partition(".")[0] == "torch" and path.rsplit(".", 1)[-1] not in STRICT_ALLOWED
    return isinstance(node.func, ast.Attribute) and node.func.attr in COMPUTE_METHODS


@rule
def strict_torch_compute(tree: ast.Module, context: CheckContext) -> Iterator[Finding]:
    """Strict mode: outside __init__ and the kernels, only allocation, layout and metadata calls of torch."""
    if not context.strict:
        return
    skipped = {id(k) for k in triton_kernels(tree)}
    for node in tree.body:  # a copy of the reference's Model may sit beside ModelNew; it is never called
        if isinstance(node, ast.ClassDef) and node.name == "Model":
            skipped.update(id(n) for n in ast.walk(node))
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or id(function) in skipped or function.name in STRICT_EXEMPT_FUNCTIONS:
            continue
        for node in ast.walk(function):
            if _computes(node, context):
                what = context.resolve(node.func) if isinstance(node, ast.Call) else "@" if isinstance(node, ast.BinOp) else "Model"
                yield _reject("strict-torch-compute", f"strict mode: {function.name} computes with torch ({what}); "
                              "only allocation, layout and metadata calls are allowed outside the kernels", node)
