"""Generates the Flex Template spec (flex_template/metadata.json) from the job's own options, so
the template can never drift from `pass-pipeline run`: every flag of PassOptions becomes a
template parameter with its help text and a validation regex, except the internal ones that
`refresh` sets itself (their role is Role.INTERNAL).

    .venv/bin/python -m pipeline.commands.flex_metadata > flex_template/metadata.json
"""

from __future__ import annotations

import argparse
import json
import re

from pipeline.options import AT_LEAST_ONE, INHERITED, MINUS_ONE_OR_MORE, add_arguments, decimal, flag, integer

GCS_PATH = r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/.+$"
GCS_BUCKET_OR_PATH = r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$"
GCS_PATHS = r"^(gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^,]+)(,gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^,]+)*$"
# A refresh inherits these lists: empty drops the previous release's (a takedown list moved or retired).
GCS_PATH_OR_NONE = r"^(|gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/.+)$"
GCS_PATHS_OR_NONE = r"^(|(gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^,]+)(,gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^,]+)*)$"
# What the job's own parsing takes (options.integer and options.decimal: their spellings, no negative zero;
# options.flag), with the sign validate() allows; ranges
# (--jpeg_quality 1..100, a timeout above 0) are checked by the job at launch, in one line. Every float option is
# 0 or more.
NON_NEGATIVE_INT = r"^\+?[0-9]+$"
POSITIVE_INT = r"^\+?0*[1-9][0-9]*$"
MINUS_ONE_OR_MORE_INT = r"^(-0*1|\+?[0-9]+)$"
NON_NEGATIVE_FLOAT = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
FLAG = r"^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|1|0)$"  # options.flag, any case
SPECIAL = {
    "input": GCS_PATH,
    "output": GCS_BUCKET_OR_PATH,
    "model_registry": GCS_PATH_OR_NONE,
    "review_decisions": GCS_PATH_OR_NONE,
    "cache": GCS_PATH,
    "carry_over": GCS_PATH,
    "previous_index": GCS_PATH,
    "ledger": GCS_PATH,
    "blocklist": GCS_PATHS_OR_NONE,
    "decontaminate": GCS_PATHS_OR_NONE,
    "formats": r"^(webdataset|parquet|tfrecord)(,(webdataset|parquet|tfrecord))*$",
    "allowed_hosts": r"^[a-z0-9*.:-]+(,[a-z0-9*.:-]+)*$",
    "contact": r"^https?://[!-~]{1,300}$",
    "source": r"^(yfcc|flickr)$",
    "input_format": r"^(yfcc|csv|tsv|tsv_plain|parquet|jsonl)$",
    "columns": r"^[a-z_]+=[^,=]+(,[a-z_]+=[^,=]+)*$",
    "min_upload_date": r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]+)$",
    "max_upload_date": r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]+)$",
    "flickr_licenses": r"^(4|11)(,(4|11))*$",  # CC BY only (options.validate)
    "flickr_rest_url": r"^https?://.+$",
    "flickr_credentials": r"^(sm://projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?|gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/.+)$",
}
REQUIRED = ("output",)  # --input only for --source=yfcc; the job says so at start
# The monthly refresh's own parameters (`pass-pipeline refresh`); with `previous` set, the launcher
# runs a refresh, and --output is then the releases' root.
REFRESH = (
    {"name": "previous", "label": "Previous release",
     "helpText": "Run a refresh: the previous release's folder, or 'latest' for the newest published release "
                 "under OUTPUT/releases (none yet: the first release). The new release goes to "
                 "OUTPUT/releases/RELEASE.",
     "isOptional": True, "regexes": [r"^(latest|gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/.+)$"]},
    {"name": "release", "label": "Release name",
     "helpText": "Name of the new release (a refresh, the first one too without `previous`): letters, digits, "
                 "'.', '_', '-', not starting with '.'. Default: the launch month, YYYY-MM.",
     "isOptional": True, "regexes": [r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"]},
)


def option_actions() -> list[argparse.Action]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return [action for action in parser._actions if action.dest != "help" and action.help != argparse.SUPPRESS]


def _regex(action: argparse.Action) -> str | None:
    if action.choices:
        return f"^({'|'.join(re.escape(str(choice)) for choice in action.choices)})$"
    if action.type is flag:
        return FLAG
    if action.type is decimal:
        return NON_NEGATIVE_FLOAT
    if action.type is integer:
        return POSITIVE_INT if action.dest in AT_LEAST_ONE else \
            MINUS_ONE_OR_MORE_INT if action.dest in MINUS_ONE_OR_MORE else NON_NEGATIVE_INT
    return None


def metadata() -> dict:
    parameters = []
    for action in option_actions():
        default = f" Default: {action.default}." if action.default not in (None, "") else ""
        if action.dest in INHERITED:
            default += " A refresh (--previous) takes the previous release's value unless given."
        parameter = {
            "name": action.dest,
            "label": action.dest.replace("_", " ").capitalize(),
            "helpText": f"{action.help}{default}",
            "isOptional": action.dest not in REQUIRED,
        }
        regex = SPECIAL.get(action.dest) or _regex(action)
        if regex:
            parameter["regexes"] = [regex]
        parameters.append(parameter)
    parameters += [dict(entry) for entry in REFRESH]
    return {
        "name": "PASS-style CC BY image dataset",
        "description": "Builds a CC BY, fully attributed image dataset from YFCC100M metadata (see README).",
        "streaming": False,
        "supportsAtLeastOnce": False,
        "supportsExactlyOnce": True,
        "defaultStreamingMode": "UNSPECIFIED",
        "parameters": parameters,
    }


def render() -> str:
    return json.dumps(metadata(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
