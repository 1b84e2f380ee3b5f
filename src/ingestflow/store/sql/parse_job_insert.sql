INSERT INTO parse_jobs (id, document_id, provider_job_id)
VALUES (%(id)s, %(document_id)s, %(provider_job_id)s)
