"""A Griffe extension for the API page: show constant defaults by value in signatures.

``BertTextClassifier(model_name_or_path=DEFAULT_MODEL, ...)`` reads better as
``model_name_or_path="sentence-transformers/all-MiniLM-L6-v2"``: for every parameter of
the package whose default is a bare name bound to a string constant of the package (such
as ``skbert._pretrained.DEFAULT_MODEL``), the signature shows the string. Loaded by
mkdocstrings (``extensions:`` in mkdocs.yml); it reads the source Griffe parsed and
imports nothing.
"""

import ast

import griffe


class ConstantDefaults(griffe.Extension):
    """Replace name defaults bound to string constants with the strings."""

    def on_package(self, *, pkg, loader, **kwargs):
        """Rewrite the defaults of every function of ``pkg`` once it is loaded."""
        for function in _functions(pkg):
            for parameter in function.parameters:
                value = _constant(function, parameter.default)
                if value is not None:
                    parameter.default = repr(value)


def _functions(obj, seen=None):
    """Every function (methods included) defined in ``obj``, not following aliases."""
    seen = set() if seen is None else seen
    for member in obj.members.values():
        if member.is_alias or id(member) in seen:
            continue
        seen.add(id(member))
        if member.is_function:
            yield member
        elif member.is_class or member.is_module:
            yield from _functions(member, seen)


def _constant(function, default):
    """The string constant a bare-name default is bound to, or None."""
    if not isinstance(default, griffe.ExprName):
        return None
    try:
        target = function.module[default.name]
        while target.is_alias:
            target = target.final_target
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    if not target.is_attribute or target.value is None:
        return None
    try:
        value = ast.literal_eval(str(target.value))
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None
