"""Background jobs: a persistent queue in the database and the worker pool that runs them."""

from .queue import ClaimedJob, DatabaseJobQueue, JobQueue, JobView, new_job_id
from .worker import JobContext, JobHandler, WorkerPool

__all__ = [
    "ClaimedJob", "DatabaseJobQueue", "JobContext", "JobHandler", "JobQueue", "JobView", "WorkerPool", "new_job_id",
]
