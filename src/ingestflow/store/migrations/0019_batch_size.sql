-- How many jobs ran in the batch that last claimed each job (worker.py records it). A job
-- whose lease ran out under a worker that died was in a batch of that many; the claim
-- that takes it again takes at most half as many (claim_jobs.sql), and charges the crash
-- as an attempt only to a job that ran alone, so a document that kills its worker is
-- soon running alone and fails alone, and the rest of its batch is not charged for it.
ALTER TABLE jobs ADD COLUMN batch_size integer NOT NULL DEFAULT 1;
