resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = "${var.name_prefix}-images"
  description   = "Worker and launcher image of the PASS pipeline."
  format        = "DOCKER"
  #checkov:skip=CKV_GCP_84:Google-managed encryption is acceptable for a public open-source image; a CMEK adds a KMS key to manage.
}
