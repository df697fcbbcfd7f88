"""`pass-pipeline verify RELEASE`: every file against the manifest, each hashed as a stream and then, if it
matched, read as a stream (one record held at a time), the formats against each other and the rejections, ledger and
near-duplicate index against the kept photos (release/verify.py); one line per problem."""

from __future__ import annotations

from pipeline.release.verify import verify


def verify_command(release: str) -> int:
    problems = list(verify(release))
    for problem in problems:
        print(f"{problem.path}: {problem.message}")
    print(f"{release}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 0 if not problems else 1


