"""The ``cnn-gradcheck`` command.

    cnn-gradcheck validate [--profile ci] [--only conv]      the main job: every formula of the derivations
    cnn-gradcheck check conv2d mypkg.layers:MyConv           the property suite on your layer
    cnn-gradcheck list                                       the ops, with their calling conventions
    cnn-gradcheck replay conv2d mypkg.layers:MyConv --config '{"N": 1, ...}' --seed 7
                                                             re-run exactly the case a failure report names
Exit status: 0 passed, 1 a check failed, 2 bad usage.
"""
from __future__ import annotations

import argparse
import json
import sys


def _check(args) -> int:
    from hypothesis import settings
    from . import profiles
    from .calls import ImplementationError
    from .layouts import PluginOptionError
    from .plugins import PluginCheckFailure, check_plugin, load, op_spec
    try:
        op_spec(args.op)
        chosen = profiles.check_settings()
        report = check_plugin(args.op, load(args.target), target=args.target,
                              settings=settings(chosen, max_examples=args.max_examples) if args.max_examples
                              else chosen)
    except (PluginCheckFailure, ImplementationError, PluginOptionError) as failure:
        print(failure)
        return 1
    print(report.summary())
    return 0


def _replay(args) -> int:
    from .calls import ImplementationError
    from .layouts import PluginOptionError
    from .plugins import PluginCheckFailure, replay
    try:
        result = replay(args.op, args.target, json.loads(args.config), args.seed, layout=args.layout)
    except (PluginCheckFailure, ImplementationError, PluginOptionError) as failure:
        print(failure)
        return 1
    print(f"{result.case.describe()}: passed ({len(result.comparisons)} comparisons)")
    return 0


def _list(args) -> int:
    from .registry import all_specs
    for name, spec in sorted(all_specs().items()):
        hyper = ", ".join(f"{k}=" for k in spec.hyper(_probe_config(spec)))
        args_ = ", ".join(spec.arg_names)
        grads = ", ".join(f"d{n}" for n in spec.differentiable)
        print(f"{name}\n  forward({args_}{', ' + hyper if hyper else ''}) -> y\n"
              f"  backward(dy, {args_}{', ' + hyper if hyper else ''}) -> ({grads})"
              + (f"\n  {spec.description}" if spec.description else ""))
    return 0


def _probe_config(spec):
    from .options import _minimal_case
    return _minimal_case(spec, {}).config


def _validate(args) -> int:
    from . import validate
    return validate.main(args.rest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cnn-gradcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="the main job: validate every formula of the derivations",
                       add_help=False)
    v.add_argument("rest", nargs=argparse.REMAINDER)
    v.set_defaults(run=_validate)
    c = sub.add_parser("check", help="run the property suite on your implementation of an op")
    c.add_argument("op")
    c.add_argument("target", metavar="MODULE:ATTR")
    c.add_argument("--max-examples", type=int, default=None, help="generated cases (default: the profile's)")
    c.set_defaults(run=_check)
    r = sub.add_parser("replay", help="re-run exactly one case of a failure report")
    r.add_argument("op")
    r.add_argument("target", metavar="MODULE:ATTR")
    r.add_argument("--config", required=True, help="the configuration as JSON, as the report prints it")
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--layout", default="contiguous")
    r.set_defaults(run=_replay)
    ls = sub.add_parser("list", help="the ops and their calling conventions")
    ls.set_defaults(run=_list)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
