INSERT INTO breakers (service) VALUES (%(service)s) ON CONFLICT DO NOTHING
