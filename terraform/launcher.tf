# The monthly refresh's launcher: a Cloud Run job running the image's `pass-pipeline refresh` on Dataflow. The
# launcher must live for the whole Dataflow job: it waits for the job, then publishes the release (the manifest
# last), cancels the job when it is stopped, and releases the output's lock. A Flex Template cannot do that: its
# program only writes the job's spec, and the job is made once the program has ended (README, "Run on Google
# Cloud"). One task, never retried by Cloud Run: a refresh stopped part way is finished or refused by its rerun
# (README, "Releases and the monthly refresh"), which an operator starts once they know why the first one failed.

locals {
  image = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/pass-pipeline:${var.image_tag}"
  # What the launcher runs: the first release when none is published under the data bucket, then each month a
  # refresh of the newest (releases/YYYY-MM, the launch month). Every flag is one `pass-pipeline refresh` takes
  # (tests/test_terraform.py runs these against the refresh's own parser).
  refresh_flags = [
    "refresh",
    "--previous=latest",
    "--input=${var.input_pattern}",
    "--output=gs://${google_storage_bucket.data.name}",
    "--flickr_credentials=sm://${google_secret_manager_secret.flickr["flickr-credentials"].id}",
    "--runner=DataflowRunner",
    "--project=${var.project_id}",
    "--region=${var.region}",
    "--temp_location=gs://${google_storage_bucket.temp.name}/dataflow",
    "--staging_location=gs://${google_storage_bucket.temp.name}/staging",
    "--service_account_email=${google_service_account.worker.email}",
    "--sdk_container_image=${local.image}",
    "--experiments=use_runner_v2",
    "--experiments=no_use_multiple_sdk_containers",
    "--dataflow_service_options=worker_accelerator=type:${var.gpu_type};count:1;install-nvidia-driver",
    "--machine_type=${var.machine_type}",
    "--max_num_workers=${var.max_workers}",
    "--require_gpu",
  ]
  # The takedown list, given each month (a refresh inherits it anyway): without it the schedule's first release, made
  # when the data bucket holds none, would name no takedown list, and nor would any release built on it.
  refresh_args = concat(local.refresh_flags, var.takedown_list == "" ? [] : ["--blocklist=${var.takedown_list}"])
}

resource "google_cloud_run_v2_job" "refresh" {
  name                = "${var.name_prefix}-monthly-refresh"
  location            = var.region
  deletion_protection = false

  template {
    task_count = 1

    template {
      service_account = google_service_account.launcher.email
      timeout         = "${var.launcher_timeout_hours * 3600}s"
      max_retries     = 0

      containers {
        image = local.image
        # The image's entrypoint is Beam's worker boot; the launcher is the project's command.
        command = ["pass-pipeline"]
        args    = local.refresh_args

        resources {
          limits = {
            cpu    = "2"
            memory = var.launcher_memory
          }
        }
      }
    }
  }
}
