-- Wake the listeners of a channel when the transaction commits (duplicates in one
-- transaction are delivered once). pg_notify takes the channel as a parameter.
SELECT pg_notify(%(channel)s, '')
