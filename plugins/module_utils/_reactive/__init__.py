# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reactive path: job documents, the MongoDB job queue, and the migration from kombu queues.

- `job`: the job document, its validation and the forward-only status order (pure).
- `mongo`: the MongoDB connection with bounded timeouts and one error type.
- `queue`: the queue (enqueue, claim with a lease, renew, release, mark spawned or dead, depth).
- `kombu_messages`: draining the kombu-format `messages` collection of older webhook routers.
- `backlog`: the queue in a reconcile (pools sized for the jobs no consumer served; backfills).
"""
