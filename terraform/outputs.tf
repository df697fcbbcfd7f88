output "data_bucket" {
  description = "Bucket that holds the releases."
  value       = google_storage_bucket.data.name
}

output "temp_bucket" {
  description = "Dataflow temp bucket."
  value       = google_storage_bucket.temp.name
}

output "staging_bucket" {
  description = "Staging bucket (the Flex Template spec; the job stages its files in the temp bucket)."
  value       = google_storage_bucket.staging.name
}

output "image" {
  description = "Image the workers and the launcher run."
  value       = local.image
}

output "template_spec" {
  description = "Where `gcloud dataflow flex-template build` must write the template spec."
  value       = local.template_spec
}

output "worker_service_account" {
  description = "Service account of the Dataflow workers."
  value       = google_service_account.worker.email
}

output "flickr_secrets" {
  description = "Secret Manager secret to fill with the Flickr credentials JSON ({key, secret} or {keys: [...]})."
  value       = [for secret in google_secret_manager_secret.flickr : secret.secret_id]
}
