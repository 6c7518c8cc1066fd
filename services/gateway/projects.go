package gateway

import (
	projects "github.com/mlpanel/mlpanel/services/projects/client"
)

// projectInfo is the projects service's project, as the gateway resolves
// it (projects.Resolver): where its tracking server is, who created it,
// whether it runs.
type projectInfo = projects.Project
