# Two buckets (and the access-log bucket): released data (versioned, never public), and Dataflow's temp and staged
# job files (expire). All with uniform bucket-level access and public access prevention.

resource "google_storage_bucket" "logs" {
  name                        = "${var.name_prefix}-${var.project_id}-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  #checkov:skip=CKV_GCP_62:This is the access-log bucket itself; logging it into itself would loop.

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "data" {
  name                        = "${var.name_prefix}-${var.project_id}-data"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Releases are immutable; versioning keeps an accidental overwrite or delete recoverable.
  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.logs.name
  }

  # A refresh's work cache (work/NAME/: images and scores a killed refresh resumes from) is deleted once its release
  # is published; versioning kept each deleted object as a noncurrent version for good, about a release's size a
  # month. Releases keep theirs (recoverable), the caches' go after a day.
  lifecycle_rule {
    condition {
      matches_prefix             = ["work/"]
      days_since_noncurrent_time = 1
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "temp" {
  name                        = "${var.name_prefix}-${var.project_id}-temp"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.logs.name
  }

  lifecycle_rule {
    condition {
      age = var.temp_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
    }
    action {
      type = "Delete"
    }
  }
}
