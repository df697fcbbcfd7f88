# The monthly refresh: Cloud Scheduler runs the launcher's Cloud Run job (launcher.tf) through the Cloud Run Admin
# API (jobs.run), with an OAuth token of an account that may run that job and do nothing else.
# (google_dataflow_flex_template_job is not used: Terraform would relaunch a finished batch job on the next apply;
# nor a Flex Template: its launch makes the job only after the program has ended, so nothing waits to publish.)

resource "google_cloud_scheduler_job" "monthly" {
  name        = "${var.name_prefix}-monthly-refresh"
  description = "Runs the PASS pipeline's monthly refresh (the launcher's Cloud Run job) once a month."
  schedule    = var.schedule
  time_zone   = var.time_zone
  region      = var.region

  # A retry would start a second execution beside a first that may be running (jobs.run answers as the execution
  # starts); a refused or failed run is the operator's to rerun.
  # Its first run must find the account allowed to run the job (apply makes the two in any order otherwise).
  depends_on = [google_cloud_run_v2_job_iam_member.scheduler_runs_the_refresh]

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/${google_cloud_run_v2_job.refresh.id}:run"
    headers = {
      "Content-Type" = "application/json"
    }

    oauth_token {
      service_account_email = google_service_account.scheduler.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }
}
