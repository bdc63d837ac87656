@echo off
rem 5.XSeg) data_dst mask - remove: delete the XSeg labels (polygons) of every face in
rem data_dst/aligned. Asks first; --yes deletes without asking.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" xseg remove-labels ^
    --input-dir "%WORKSPACE%\data_dst\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
