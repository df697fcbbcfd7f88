output "data_bucket" {
  description = "Bucket that holds the releases."
  value       = google_storage_bucket.data.name
}

output "temp_bucket" {
  description = "Dataflow temp bucket."
  value       = google_storage_bucket.temp.name
}

output "image" {
  description = "Image the Dataflow workers and the launcher's Cloud Run job run."
  value       = local.image
}

output "launcher_job" {
  description = "The launcher's Cloud Run job: the schedule runs it monthly; `gcloud run jobs execute` runs it now."
  value       = google_cloud_run_v2_job.refresh.name
}

output "worker_service_account" {
  description = "Service account of the Dataflow workers."
  value       = google_service_account.worker.email
}

output "flickr_secrets" {
  description = "Secret Manager secret to fill with the Flickr credentials JSON ({key, secret} or {keys: [...]})."
  value       = [for secret in google_secret_manager_secret.flickr : secret.secret_id]
}
