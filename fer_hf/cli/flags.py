"""One spelling per command-line flag: dashes (``--batch-size``), as argparse users expect. The underscore
spellings the commands had first (``--batch_size``) keep working, so that recorded commands, cards and scripts
still run, but ``--help`` shows only the dashed one."""

from __future__ import annotations

import argparse
import copy


def _underscore_twin(name: str, option_strings) -> bool:
    """True for ``--a_b`` when ``--a-b`` is also an option of the same argument."""
    return name.startswith("--") and "_" in name and "--" + name[2:].replace("_", "-") in option_strings


def _dashed_formatter(base: type) -> type:
    class DashedHelpFormatter(base):
        def _format_action_invocation(self, action):
            shown = [name for name in action.option_strings if not _underscore_twin(name, action.option_strings)]
            if len(shown) != len(action.option_strings):
                action = copy.copy(action)
                action.option_strings = shown
            return super()._format_action_invocation(action)

    return DashedHelpFormatter


def dash_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every ``--a_b`` option of ``parser`` and its subcommands the spelling ``--a-b``, shown first and
    alone in the help; ``--a_b`` stays accepted. Returns ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                dash_flags(sub)
            continue
        names = []
        for name in action.option_strings:
            if name.startswith("--") and "_" in name:
                dashed = "--" + name[2:].replace("_", "-")
                if dashed not in parser._option_string_actions:
                    parser._option_string_actions[dashed] = action
                names.append(dashed)
            names.append(name)
        action.option_strings = list(dict.fromkeys(names))
    if not getattr(parser.formatter_class, "_fer_hf_dashed", False):
        parser.formatter_class = _dashed_formatter(parser.formatter_class)
        parser.formatter_class._fer_hf_dashed = True
    return parser
