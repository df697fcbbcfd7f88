# Least privilege. The worker account runs Dataflow workers: worker role, object access on its own
# buckets only, and read access to the Flickr credentials secret only. The launcher account runs the launcher's
# Cloud Run job (launcher.tf): it submits and cancels the Dataflow job (acting as the worker account), reads the
# Flickr credentials when it builds the job (the source checks its keys there), stages the job's files in the temp
# bucket, and reads and publishes the releases. The scheduler account may run that Cloud Run job, nothing more.

resource "google_service_account" "worker" {
  account_id   = "${var.name_prefix}-worker"
  display_name = "PASS pipeline Dataflow worker"
}

resource "google_service_account" "launcher" {
  account_id   = "${var.name_prefix}-launcher"
  display_name = "PASS pipeline monthly launcher"
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "PASS pipeline monthly schedule"
}

resource "google_project_iam_member" "worker_dataflow" {
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_storage_bucket_iam_member" "worker_data" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_storage_bucket_iam_member" "worker_temp" {
  bucket = google_storage_bucket.temp.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_secret_manager_secret_iam_member" "worker_flickr" {
  for_each  = google_secret_manager_secret.flickr
  secret_id = each.value.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_artifact_registry_repository_iam_member" "worker_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_project_iam_member" "launcher_dataflow" {
  #checkov:skip=CKV_GCP_49:Submitting and cancelling a Dataflow job needs dataflow.developer, which exists only at project level; the launcher may act as the worker account alone (resource-level binding below).
  project = var.project_id
  role    = "roles/dataflow.developer"
  member  = "serviceAccount:${google_service_account.launcher.email}"
}

resource "google_service_account_iam_member" "launcher_acts_as_worker" {
  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.launcher.email}"
}

resource "google_storage_bucket_iam_member" "launcher_data" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.launcher.email}"
}

resource "google_storage_bucket_iam_member" "launcher_temp" {
  bucket = google_storage_bucket.temp.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.launcher.email}"
}

# Beam's Dataflow runner stages the job's files (pipeline.pb among them) through the storage client's get_bucket, which
# reads the bucket's metadata (storage.buckets.get) before it writes: objectUser has no bucket permission, so without
# this every launch ended at staging ("Could not upload to GCS path ... Forbidden"). The workers have it from
# dataflow.worker. Legacy Bucket Reader on this bucket alone: storage.buckets.get and storage.objects.list.
resource "google_storage_bucket_iam_member" "launcher_temp_metadata" {
  bucket = google_storage_bucket.temp.name
  role   = "roles/storage.legacyBucketReader"
  member = "serviceAccount:${google_service_account.launcher.email}"
}

resource "google_secret_manager_secret_iam_member" "launcher_flickr" {
  for_each  = google_secret_manager_secret.flickr
  secret_id = each.value.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.launcher.email}"
}

resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_the_refresh" {
  name     = google_cloud_run_v2_job.refresh.name
  location = google_cloud_run_v2_job.refresh.location
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# The input is usually in a bucket this deployment does not make (YFCC100M copied once, read by every month's run);
# the launcher lists and reads it when it builds the job, the workers read it. The binding changes the IAM policy of
# that bucket, so it is made only when asked (grant_input_read).
locals {
  input_bucket = regex("^gs://([^/]+)/", var.input_pattern)[0]
}

resource "google_storage_bucket_iam_member" "input_read" {
  for_each = var.grant_input_read ? {
    worker   = google_service_account.worker.email
    launcher = google_service_account.launcher.email
  } : {}
  bucket = local.input_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${each.value}"
}
