variable "project_id" {
  description = "Google Cloud project that runs the pipeline."
  type        = string
}

variable "region" {
  description = "Region of the buckets, the registry, the Dataflow jobs and the scheduler."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (bucket names must be globally unique)."
  type        = string
  default     = "pass"
}

variable "image_tag" {
  description = "Tag of the worker / launcher image in Artifact Registry, pushed for this deployment: every monthly run uses it, never whichever image was pushed last."
  type        = string

  validation {
    condition     = var.image_tag != "latest" && length(var.image_tag) > 0
    error_message = "Give the tag of the image you built and pushed (not \"latest\"): the schedule runs exactly that image."
  }
}

variable "schedule" {
  description = "Cron schedule of the monthly refresh (Cloud Scheduler syntax)."
  type        = string
  default     = "0 3 1 * *"
}

variable "time_zone" {
  description = "Time zone of the schedule."
  type        = string
  default     = "Etc/UTC"
}

variable "input_pattern" {
  description = "YFCC100M metadata glob the scheduled run reads (gs://BUCKET/PATH): readable by the worker and launcher accounts (under the data bucket, or see grant_input_read)."
  type        = string

  validation {
    condition     = can(regex("^gs://[a-z0-9][-a-z0-9_.]{1,220}[a-z0-9]/.", var.input_pattern))
    error_message = "Give the input as gs://BUCKET/PATH: the launcher and the Dataflow workers read it on Google Cloud."
  }
}

variable "grant_input_read" {
  description = "Grant the worker and launcher accounts roles/storage.objectViewer on input_pattern's bucket: needed when the input is not under the data bucket, and the account that applies must be allowed to change that bucket's IAM policy. false (the default): grant nothing there (the input is under the data bucket, or already readable by both accounts)."
  type        = bool
  default     = false
}

variable "gpu_type" {
  description = "GPU attached to each Dataflow worker."
  type        = string
  default     = "nvidia-l4"
}

variable "machine_type" {
  description = "Dataflow worker machine type (G2 machines carry L4 GPUs)."
  type        = string
  default     = "g2-standard-4"
}

variable "max_workers" {
  description = "Upper bound of Dataflow autoscaling: caps spend and the request rate to Flickr."
  type        = number
  default     = 20
}

variable "temp_retention_days" {
  description = "Days after which objects in the temp bucket (Dataflow's temp and staged job files) are deleted: longer than the longest job, whose workers read them while it runs (a refresh re-checking licences can take days)."
  type        = number
  default     = 30
}

variable "launcher_timeout_hours" {
  description = "Hours the launcher's Cloud Run job may run (it lives as long as the Dataflow job it waits for, then publishes): longer than the longest job, since the timeout stops the launcher, which cancels the job and publishes nothing. Cloud Run allows at most 168."
  type        = number
  default     = 72

  validation {
    condition     = var.launcher_timeout_hours >= 1 && var.launcher_timeout_hours <= 168
    error_message = "Cloud Run runs a job's task for 1 to 168 hours."
  }
}

variable "launcher_memory" {
  description = "Memory of the launcher's Cloud Run job (it reads the previous release's indexes and ids when it checks and publishes a refresh; files it writes count too): at most 8Gi with the job's 2 CPUs."
  type        = string
  default     = "8Gi"
}

variable "takedown_list" {
  description = "gs:// path of the takedown list every scheduled refresh applies (--blocklist; README, Releases and the monthly refresh), e.g. gs://DATA/takedowns.txt; it must exist before the schedule first runs. Given, it replaces the list(s) the previous release names (as any --blocklist does): name the same ones. Empty: none is given (a refresh still applies the one its previous release names)."
  type        = string
  default     = ""

  validation {
    condition     = var.takedown_list == "" || startswith(var.takedown_list, "gs://")
    error_message = "Give the takedown list as a gs:// path (the launcher runs on Cloud Run), or leave it empty."
  }
}
