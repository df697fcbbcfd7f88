# The Flickr API credentials: one JSON document {"key": …, "secret": …} or {"keys": [{…}, …]}
# (several keys spread the call budget), read by the job as --flickr_credentials=sm://… .
# Terraform creates the secret only: its value is added out of band (gcloud secrets versions
# add), so it never enters Terraform state.

resource "google_secret_manager_secret" "flickr" {
  for_each  = toset(["flickr-credentials"])
  secret_id = "${var.name_prefix}-${each.key}"

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}
