# Copyright: Contributors to the selfhosted.github_runners collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The MongoDB job queue of the reactive path (webhook router, consumer, reconcile).
    DOCUMENTATION = r"""
options:
  mongodb_uri:
    description:
      - MongoDB connection string of the job queue, for example C(mongodb://user:pass@db1,db2/?replicaSet=rs0).
      - If not set, the environment variable E(MONGODB_URI) is used.
      - Never returned or logged.
    type: str
    required: true
  mongodb_database:
    description: Database of the job queue.
    type: str
    default: github_runners
  jobs_collection:
    description: Collection of the job documents in O(mongodb_database).
    type: str
    default: jobs
  mongodb_timeout:
    description:
      - Seconds after which one MongoDB operation, server selection included, is abandoned.
    type: float
    default: 5
requirements:
  - pymongo >= 4.6
"""
