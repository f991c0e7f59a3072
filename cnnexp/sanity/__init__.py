"""`cnnexp sanity`: the checks to run before spending compute, each with a verdict.

    from cnnexp.sanity import sanity
    out = sanity(cnnexp.load_recipe("digits"), device=torch.device("cpu"),
                 checks="init-loss,overfit", track=False)
"""

from cnnexp.sanity.base import FAIL, PASS, WARN, CheckResult, SanityContext
from cnnexp.sanity.run import CHECKS, parse_checks, run_check, sanity

__all__ = ["CHECKS", "FAIL", "PASS", "WARN", "CheckResult", "SanityContext", "parse_checks",
           "run_check", "sanity"]
