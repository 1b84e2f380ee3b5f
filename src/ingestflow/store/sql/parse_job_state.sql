SELECT state FROM parse_jobs WHERE id = %(id)s
