SELECT service, state, consecutive_failures, opened_at FROM breakers ORDER BY service
