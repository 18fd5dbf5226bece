"""Mutators: make a child program from a parent (or from the reference) by one operator."""

from kernelsmith.mutators.base import Mutation, MutationContext, Mutator, ProgramView
from kernelsmith.mutators.mix import DEFAULT_WEIGHTS, NoOperator, OperatorMix
from kernelsmith.mutators.operators import Diff, FirstKernel, Fix, LLMOperator, ParamTune, Rewrite

__all__ = [
    "DEFAULT_WEIGHTS", "Diff", "FirstKernel", "Fix", "LLMOperator", "Mutation", "MutationContext", "Mutator",
    "NoOperator", "OperatorMix", "ParamTune", "ProgramView", "Rewrite",
]
