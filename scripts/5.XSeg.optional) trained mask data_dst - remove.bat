@echo off
rem 5.XSeg.optional) trained mask data_dst - remove: delete the baked XSeg masks of data_dst/aligned
rem (the labels stay; apply bakes them again).
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" xseg remove ^
    --input-dir "%WORKSPACE%\data_dst\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
