-- Forget workers dead for longer than the given age (killed ones never delete their row).
DELETE FROM workers WHERE heartbeat_at < now() - make_interval(secs => %(dead_seconds)s)
