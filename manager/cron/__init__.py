"""Scheduled containers: cron jobs across the cluster, run exactly once through failover.

jobs.py, runs.py and schedule.py are pure; store.py / etcd_store.py keep jobs and runs
(a file in the state folder, or etcd under the cluster's prefix); runner.py carries one
run through the create path; service.py is what the fronts call and what fires.
"""
