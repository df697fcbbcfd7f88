# The monthly refresh: Cloud Scheduler calls the Dataflow REST API flexTemplates:launch with an
# OAuth token of the launcher account. (google_dataflow_flex_template_job is deliberately not
# used: Terraform would relaunch a finished batch job on the next apply.)

locals {
  image         = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/pass-pipeline:${var.image_tag}"
  template_spec = "gs://${google_storage_bucket.staging.name}/templates/pass-pipeline.json"
  launch_body = {
    launchParameter = {
      jobName              = "${var.name_prefix}-monthly"
      containerSpecGcsPath = local.template_spec
      parameters = {
        input              = var.input_pattern
        output             = "gs://${google_storage_bucket.data.name}"
        previous           = "latest"
        flickr_credentials = "sm://${google_secret_manager_secret.flickr["flickr-credentials"].id}"
      }
      environment = {
        serviceAccountEmail = google_service_account.worker.email
        tempLocation        = "gs://${google_storage_bucket.temp.name}/dataflow"
        # The launcher VM (running as the worker account) writes the job's staged files here: the temp
        # bucket, where that account may write; the staging bucket holds the template, read-only to it.
        stagingLocation       = "gs://${google_storage_bucket.temp.name}/staging"
        maxWorkers            = var.max_workers
        machineType           = var.machine_type
        sdkContainerImage     = local.image
        additionalExperiments = ["use_runner_v2", "no_use_multiple_sdk_containers"]
        additionalPipelineOptions = [
          "dataflow_service_options=worker_accelerator=type:${var.gpu_type};count:1;install-nvidia-driver",
        ]
      }
    }
  }
}

resource "google_cloud_scheduler_job" "monthly" {
  name        = "${var.name_prefix}-monthly-refresh"
  description = "Launches the PASS pipeline Flex Template once a month."
  schedule    = var.schedule
  time_zone   = var.time_zone
  region      = var.region

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "https://dataflow.googleapis.com/v1b3/projects/${var.project_id}/locations/${var.region}/flexTemplates:launch"
    body        = base64encode(jsonencode(local.launch_body))
    headers = {
      "Content-Type" = "application/json"
    }

    oauth_token {
      service_account_email = google_service_account.launcher.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }
}
