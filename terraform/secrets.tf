# The Flickr API key and secret. Terraform creates the secrets only: their values are added
# out of band (gcloud secrets versions add), so they never enter Terraform state.

resource "google_secret_manager_secret" "flickr" {
  for_each  = toset(["flickr-api-key", "flickr-api-secret"])
  secret_id = "${var.name_prefix}-${each.key}"

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}
